/**
 * CRI end-to-end on containerd 2.1: pods through containerd's CRI plugin (gRPC, as kubelet
 * drives it) with CNI networking. First the reference handler (io.containerd.runc.v2), then
 * tsshim (one shim process per pod), then tsshim's backend choice by handler options, alias and
 * pod annotation; containerd 2.1 writes OCI spec 1.2, which crun 1.8.1 rejects: the "crun" backend slot runs the runc binary here (the choice of backend is still what is tested).
 */
import { defineBackendChoiceSuite, defineCriSuite, defineSharedShimSuite } from './cri-suite.js';

defineCriSuite({ line: '2.1', handler: 'runc', label: 'reference' });
defineCriSuite({ line: '2.1', handler: 'tsshim' });
defineCriSuite({ line: '2.1', handler: 'tsshim-native', label: 'native executor' });
defineBackendChoiceSuite('2.1');
defineSharedShimSuite('2.1');
