/**
 * CRI end-to-end on containerd 1.6: pods through containerd's CRI plugin (gRPC, as kubelet
 * drives it) with CNI networking. First the reference handler (io.containerd.runc.v2), then
 * tsshim (one shim process per pod), then tsshim's backend choice by handler options, alias and
 * pod annotation; crun is real here: containerd 1.6 writes OCI spec 1.0.2.
 */
import { defineBackendChoiceSuite, defineCriSuite, defineSharedShimSuite } from './cri-suite.js';

defineCriSuite({ line: '1.6', handler: 'runc', label: 'reference' });
defineCriSuite({ line: '1.6', handler: 'tsshim' });
defineCriSuite({ line: '1.6', handler: 'tsshim-native', label: 'native executor' });
defineBackendChoiceSuite('1.6');
defineSharedShimSuite('1.6');
