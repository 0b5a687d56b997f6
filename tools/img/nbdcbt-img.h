/* nbdcbt-img: shared declarations of the subcommands. */
#ifndef NBDCBT_IMG_H
#define NBDCBT_IMG_H

#include <stdbool.h>
#include <stdint.h>

#define PROGNAME "nbdcbt-img"

/* Print "nbdcbt-img: MESSAGE" on stderr (%m allowed). */
extern void img_error (const char *fs, ...)
  __attribute__ ((__format__ (__printf__, 1, 2)));

/* The library's last error, without the "PATH: " it may start with
 * (the callers name the file themselves).
 */
extern const char *lib_error (const char *path);

/* The image formats the tool knows. */
enum img_format { FMT_UNKNOWN = 0, FMT_QCOW2, FMT_RAW };

/* Parse "qcow2" / "raw"; prints an error and returns FMT_UNKNOWN otherwise. */
extern enum img_format parse_format (const char *name);
/* The format of PATH: FMT if given, else probed from the magic.  Prints an
 * error and returns FMT_UNKNOWN if the file cannot be opened.
 */
extern enum img_format probe_format (const char *path, enum img_format fmt);
extern const char *format_name (enum img_format fmt);

/* QEMU's size_to_str: "10 MiB", "1.5 GiB", "224 KiB". */
extern void size_to_str (uint64_t val, char *buf, size_t len);

/* Print STR as a JSON string literal (with quotes). */
extern void json_print_string (const char *str);

/* The default bitmap granularity QEMU picks for a cluster size. */
extern uint64_t default_bitmap_granularity (uint32_t cluster_size);

extern int cmd_create (int argc, char *argv[]);
extern int cmd_info (int argc, char *argv[]);
extern int cmd_check (int argc, char *argv[]);
extern int cmd_bitmap (int argc, char *argv[]);
extern int cmd_map (int argc, char *argv[]);

#endif /* NBDCBT_IMG_H */
