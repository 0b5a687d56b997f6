/* The bitmap model of an export (owner: change tracking).  Placeholder. */
#include <config.h>
#include "dirty-bitmap.h"
