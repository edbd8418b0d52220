/*
 * SHA-256 (FIPS 180-4), just enough for the launcher: the shim socket name is the hex
 * digest of "<containerd address>/<namespace>/<group key>", and computing it in C
 * saves loading a crypto library.
 */
#ifndef TSSHIM_SHA256_H
#define TSSHIM_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32

struct sha256 {
	uint32_t state[8];
	uint64_t bytes;      /* total message length so far */
	uint8_t block[64];   /* partial block not yet compressed */
	size_t fill;         /* bytes used in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST_SIZE]);

/* one-shot: lowercase hex digest (64 chars + NUL) of data */
void sha256_hex(const void *data, size_t len, char out[2 * SHA256_DIGEST_SIZE + 1]);

#endif
