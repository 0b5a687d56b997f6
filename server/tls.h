/* nbdcbt
 * Copyright (C) 2026 the nbdcbt authors
 * All rights reserved.
 *
 * Redistribution and use in source and binary forms, with or without
 * modification, are permitted provided that the following conditions are
 * met:
 *
 * * Redistributions of source code must retain the above copyright
 * notice, this list of conditions and the following disclaimer.
 *
 * * Redistributions in binary form must reproduce the above copyright
 * notice, this list of conditions and the following disclaimer in the
 * documentation and/or other materials provided with the distribution.
 *
 * * Neither the name of the nbdcbt authors nor the names of its
 * contributors may be used to endorse or promote products derived from
 * this software without specific prior written permission.
 *
 * THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
 * "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
 * LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A
 * PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
 * HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
 * SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
 * LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
 * DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
 * THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
 * (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
 * OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
 */

/* nbdcbt server: TLS (tls.c). */
#ifndef NBDCBT_TLS_H
#define NBDCBT_TLS_H

#include <stdbool.h>
#include <stddef.h>

enum {
  TLS_MODE_UNSET = -1,  /* no --tls: require if credentials are given */
  TLS_MODE_OFF,         /* STARTTLS is refused (NBD_REP_ERR_POLICY) */
  TLS_MODE_ON,          /* plaintext and TLS clients */
  TLS_MODE_REQUIRE,     /* nothing but STARTTLS and ABORT before TLS */
};

extern int tls_mode;
extern const char *tls_certificates_dir; /* --tls-certificates */
extern const char *tls_psk_file;         /* --tls-psk */
extern bool tls_verify_peer;             /* --tls-verify-peer */

extern int tls_parse_mode (const char *arg);
/* Startup: settle the mode and load the credentials, or say why not. */
extern int tls_init (void);
extern void tls_cleanup (void);

struct transport;
/* After STARTTLS's ACK: the TLS handshake on the connection, within
 * TIMEOUT_MS; then the transport reads and writes through the session
 * (and the reads of the rest of the NBD handshake keep that time limit).
 * -1 (the reason logged) if the handshake fails: drop the client.
 */
extern int tls_start (struct transport *t, int timeout_ms);
extern bool tls_active (struct transport *t);
/* The transmission phase begins: reads wait as long as they need. */
extern void tls_handshake_over (struct transport *t);

#endif /* NBDCBT_TLS_H */
