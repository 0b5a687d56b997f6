/* The bitmap model of an export (owner: change tracking).  Placeholder. */
#ifndef NBDCBT_DIRTY_BITMAP_H
#define NBDCBT_DIRTY_BITMAP_H
#endif
