/**
 * A shell script run inside a container to see its loopback interface: its flags (IFF_UP is
 * 0x1), `ip link`'s view and a ping of 127.0.0.1 (the ctr suite: containerd's default spec
 * gives CAP_NET_RAW).
 */
export const LOOPBACK_PROBE = [
  'echo flags=$(cat /sys/class/net/lo/flags)',
  'ip link show lo | head -n1 | grep -q "[<,]UP[,>]" && echo link=UP || echo link=DOWN',
  // a packet over 127.0.0.1 (a TCP round trip with busybox nc lost its line under load)
  'ping -c 1 -W 2 127.0.0.1 >/dev/null 2>&1 && echo over-lo || echo no-route-over-lo',
].join('\n');

/**
 * The same with a TCP connection over 127.0.0.1 instead of ping, for specs without CAP_NET_RAW
 * (the native/runc parity test): retried while the listener is not up yet (up to 20 s: CI
 * machines are loaded); any other error, such as "Network is unreachable" with lo down, is
 * printed at once. The client reports the success: waiting for the listener to print what it
 * got lost the line under load.
 */
export const LOOPBACK_TCP_PROBE = [
  'echo flags=$(cat /sys/class/net/lo/flags)',
  'ip link show lo | head -n1 | grep -q "[<,]UP[,>]" && echo link=UP || echo link=DOWN',
  'nc -l -p 7777 >/dev/null 2>&1 & listener=$!',
  'for i in $(seq 1 200); do',
  '  r=$(echo ping | nc 127.0.0.1 7777 2>&1) && { echo over-lo; break; }',
  '  case "$r" in *refused*) sleep 0.1 ;; *) echo "connect=$r"; break ;; esac',
  'done',
  'kill $listener 2>/dev/null',
  'wait',
].join('\n');

/** what LOOPBACK_PROBE and LOOPBACK_TCP_PROBE print when lo is up, as runc leaves it in a new network namespace */
export const LOOPBACK_UP = 'flags=0x9\nlink=UP\nover-lo\n';
