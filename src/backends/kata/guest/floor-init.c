/*
 * PID 1 of floor.img, the kata benchmark's floor: the same kernel and QEMU as the real guest,
 * an init that powers the VM off at once. Boot-to-power-off of this image is what the real
 * guest's boot-to-agent-answering time is compared with.
 */
#include <sys/reboot.h>
#include <unistd.h>

int main(void) {
  reboot(RB_POWER_OFF);
  for (;;) pause();
}
