/** Our ttrpc implementation (containerd's RPC over unix sockets): framing, envelope, server, client. */
export { Code, codeName, TtrpcError, type StatusLike } from './status.js';
export {
  FRAME_HEADER_LENGTH,
  MAX_MESSAGE,
  MessageType,
  Flag,
  FrameDecoder,
  FrameTooLargeError,
  encodeFrame,
  writeFrameHeader,
  type Frame,
  type OversizedFrame,
  type DecodedFrame,
} from './frame.js';
export {
  ProtoDecodeError,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  type KeyValue,
  type RequestEnvelope,
  type OutgoingRequest,
  type ResponseEnvelope,
  type OutgoingResponse,
  type RpcStatus,
} from './envelope.js';
export {
  TtrpcServer,
  decodePayload,
  defaultErrorToStatus,
  type CallContext,
  type PayloadDecoder,
  type UnaryHandler,
  type TtrpcServerOptions,
} from './server.js';
export { TtrpcClient, type CallOptions, type ConnectOptions } from './client.js';
