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
