/* The bitmap store interface (owner: change tracking).  Placeholder. */
#ifndef NBDCBT_BITMAP_STORE_H
#define NBDCBT_BITMAP_STORE_H
#endif
