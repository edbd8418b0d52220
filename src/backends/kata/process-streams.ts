/**
 * A guest process's stdio, carried over the agent: its output comes from ReadStdout /
 * ReadStderr calls (each blocks in the agent until there are bytes; empty data, or an error,
 * means the stream ended), its input goes out with WriteStdin and ends with CloseStdin. On the host
 * side are the fds the core opened (FIFOs, pipes, files) — or, for a terminal, our end of a
 * socketpair whose other end the core treats as the console.
 *
 * `outputDone` resolves when every output stream has ended, so the exit is published only
 * after the last byte reached containerd (Kata's shim waits for its IO copy the same way).
 */
import { fstatSync, write } from 'node:fs';
import { openPipeFd, type ByteStream } from '../../sys/uv-pipe.js';
import * as ffi from '../../sys/ffi.js';

/** what the streams need from the agent client */
export interface StreamAgent {
  readStdout(r: { containerId: string; execId: string; len: number }): Promise<{ data: Uint8Array }>;
  readStderr(r: { containerId: string; execId: string; len: number }): Promise<{ data: Uint8Array }>;
  writeStdin(r: { containerId: string; execId: string; data: Buffer }): Promise<{ len: number }>;
  closeStdin(r: { containerId: string; execId: string }): Promise<unknown>;
}

/** bytes asked for per read call: big enough to move output in few round trips */
const READ_CHUNK = 64 * 1024;

/** an output fd: a stream when it is a pipe, FIFO or socket, else plain writes (a file) */
class OutputSink {
  private readonly stream: ByteStream | undefined;
  private closed = false;

  constructor(private readonly fd: number) {
    const st = fstatSync(fd);
    this.stream = st.isFIFO() || st.isSocket() ? openPipeFd(fd) : undefined;
    this.stream?.on('error', () => {
      // a reader that went away: the bytes are dropped, as a FIFO writer's would be
    });
  }

  async write(data: Uint8Array): Promise<void> {
    if (this.closed || data.length === 0) return;
    if (this.stream) {
      if (this.stream.destroyed) return;
      if (!this.stream.write(data)) {
        // a reader that drained it, or one that went away (the bytes are then dropped)
        await new Promise<void>((resolve) => {
          this.stream!.once('drain', resolve);
          this.stream!.once('close', resolve);
        });
      }
      return;
    }
    let off = 0;
    while (off < data.length) {
      off += await new Promise<number>((resolve, reject) =>
        write(this.fd, data, off, data.length - off, null, (err, n) => (err ? reject(err) : resolve(n))),
      );
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.stream) this.stream.end(() => this.stream!.destroy());
    else ffi.closeFd(this.fd);
  }
}

export interface ProcessStreamsInput {
  agent: StreamAgent;
  containerId: string;
  execId: string;
  /** our own fds (the streams close them): 'none' when the process has no such stream */
  stdin: number | 'none';
  stdout: number | 'none';
  /** absent for a terminal (its output all comes on stdout) */
  stderr: number | 'none';
}

export class ProcessStreams {
  readonly outputDone: Promise<void>;
  private stopped = false;
  private stdinStream: ByteStream | undefined;

  constructor(private readonly input: ProcessStreamsInput) {
    const outputs: Array<Promise<void>> = [];
    if (input.stdout !== 'none') outputs.push(this.pump('stdout', new OutputSink(input.stdout)));
    if (input.stderr !== 'none') outputs.push(this.pump('stderr', new OutputSink(input.stderr)));
    this.outputDone = Promise.all(outputs).then(() => undefined);
    if (input.stdin !== 'none') this.feedStdin(input.stdin);
    // the agent gives every process a stdin pipe (as kata-agent does): one nobody feeds is closed
    else void input.agent.closeStdin({ containerId: input.containerId, execId: input.execId }).catch(() => undefined);
  }

  private async pump(which: 'stdout' | 'stderr', sink: OutputSink): Promise<void> {
    const { agent, containerId, execId } = this.input;
    const read = which === 'stdout' ? agent.readStdout.bind(agent) : agent.readStderr.bind(agent);
    try {
      while (!this.stopped) {
        let r: { data: Uint8Array };
        try {
          r = await read({ containerId, execId, len: READ_CHUNK });
        } catch {
          return; // the VM or the stream is gone (some agents answer EOF with an error)
        }
        // kata-agent answers the end of the stream with empty data
        if (r.data.length === 0) return;
        await sink.write(r.data);
      }
    } catch {
      // the host side of the stream failed: nothing more can be delivered
    } finally {
      sink.close();
    }
  }

  private feedStdin(fd: number): void {
    const { agent, containerId, execId } = this.input;
    let stream: ByteStream;
    try {
      stream = openPipeFd(fd);
    } catch {
      // not a pipe (e.g. /dev/null given as a file): nothing to feed, the input is empty
      ffi.closeFd(fd);
      void agent.closeStdin({ containerId, execId }).catch(() => undefined);
      return;
    }
    this.stdinStream = stream;
    let chain = Promise.resolve();
    stream.on('data', (chunk: Buffer) => {
      stream.pause();
      chain = chain
        .then(async () => {
          let off = 0;
          while (off < chunk.length && !this.stopped) {
            const r = await agent.writeStdin({ containerId, execId, data: chunk.subarray(off) });
            off += r.len > 0 ? r.len : chunk.length - off;
          }
        })
        .catch(() => {
          this.stopped || stream.destroy();
        })
        .finally(() => {
          if (!stream.destroyed) stream.resume();
        });
    });
    const finish = () => {
      chain = chain.then(() => agent.closeStdin({ containerId, execId }).then(() => undefined, () => undefined));
    };
    stream.once('end', finish);
    stream.on('error', () => {
      // the writer side vanished: treated as the end of the input
    });
  }

  /** stop feeding input and reading output (the process is gone or being deleted) */
  stop(): void {
    this.stopped = true;
    this.stdinStream?.destroy();
  }
}
