/* placeholder replaced below */
#include <config.h>
#include "qcow2-internal.h"
int qcow2_bitmaps_load_directory (struct qcow2 *q) { (void) q; return 0; }
void qcow2_bitmaps_free (struct qcow2 *q) { (void) q; }
#include <errno.h>
int qcow2_bitmap_list (struct qcow2 *q, struct qcow2_bitmap_info **l, size_t *n) { (void)q;(void)l;(void)n; return qcow2_error (ENOTSUP, "not yet"); }
void qcow2_bitmap_list_free (struct qcow2_bitmap_info *l, size_t n) { (void)l;(void)n; }
struct hbitmap *qcow2_bitmap_load (struct qcow2 *q, const char *name) { (void)q;(void)name; return NULL; }
int qcow2_bitmaps_mark_in_use (struct qcow2 *q) { (void)q; return -1; }
int qcow2_bitmaps_store (struct qcow2 *q, const struct qcow2_bitmap_store_entry *s, size_t n, const char *const *k, size_t nk) { (void)q;(void)s;(void)n;(void)k;(void)nk; return -1; }
int qcow2_bitmap_add (struct qcow2 *q, const char *name, uint64_t g, bool r) { (void)q;(void)name;(void)g;(void)r; return -1; }
int qcow2_bitmap_remove (struct qcow2 *q, const char *name) { (void)q;(void)name; return -1; }
