# Shared code of corral's bundled "image" OS definition (POSIX sh, sourced).
#
# Configuration, read in this order (later wins), all plain shell assignments:
#   $IMAGE_DEFAULTS                      (default /etc/default/ganeti-instance-image)
#   $IMAGE_CONFIG_DIR/variants/<variant>.conf
#                                        (IMAGE_CONFIG_DIR default /etc/ganeti/instance-image)
#   OS parameters OSP_IMAGE_NAME, OSP_IMAGE_TYPE, OSP_CDINSTALL
# See README.md for the variables and what create does with them.

IMAGE_CONFIG_DIR="${IMAGE_CONFIG_DIR:-/etc/ganeti/instance-image}"
IMAGE_DEFAULTS="${IMAGE_DEFAULTS:-/etc/default/ganeti-instance-image}"
IMAGE_MARKER="CORRAL-IMAGE-OS 1"

log() {
    echo "image OS: $*" >&2
}

die() {
    log "error: $*"
    exit 1
}

usage() {
    echo "usage: $1" >&2
    echo "Ganeti OS API 20 script; all input comes from the environment" >&2
    echo "(OS_VARIANT, INSTANCE_NAME, DISK_*, ...), see ganeti-os-interface(7)." >&2
}

# load_config: set VARIANT and the configuration variables
load_config() {
    VARIANT="${OS_VARIANT:-default}"
    case "$VARIANT" in
        ""|.*|*/*) die "invalid variant name '$VARIANT'" ;;
    esac
    CDINSTALL="no"
    NOMOUNT="no"
    IMAGE_NAME=""
    IMAGE_FILE=""
    IMAGE_TYPE="qemu"
    IMAGE_DIR="/var/cache/ganeti-instance-image"
    ARCH=""
    FILESYSTEM="ext4"
    QEMU_IMG="qemu-img"
    IMAGE_DEBUG="0"
    if [ -f "$IMAGE_DEFAULTS" ]; then
        . "$IMAGE_DEFAULTS"
    fi
    VARIANT_CONFIG="$IMAGE_CONFIG_DIR/variants/$VARIANT.conf"
    if [ -f "$VARIANT_CONFIG" ]; then
        . "$VARIANT_CONFIG"
    elif [ "$VARIANT" != "default" ]; then
        die "variant configuration $VARIANT_CONFIG not found (write it on every node, e.g. with gnt-cluster copyfile)"
    fi
    if [ -n "${OSP_IMAGE_NAME:-}" ]; then IMAGE_NAME="$OSP_IMAGE_NAME"; fi
    if [ -n "${OSP_IMAGE_TYPE:-}" ]; then IMAGE_TYPE="$OSP_IMAGE_TYPE"; fi
    if [ -n "${OSP_CDINSTALL:-}" ]; then CDINSTALL="$OSP_CDINSTALL"; fi
    if [ -z "$ARCH" ]; then ARCH="$(uname -m)"; fi
    if [ "${DEBUG_LEVEL:-0}" != "0" ] || [ "$IMAGE_DEBUG" != "0" ]; then
        set -x
    fi
}

# require_disk0: the instance must have a first disk that exists on this node
require_disk0() {
    if [ "${DISK_COUNT:-0}" -lt 1 ]; then
        die "instance $INSTANCE_NAME has no disks (DISK_COUNT=${DISK_COUNT:-0})"
    fi
    if [ -z "${DISK_0_PATH:-}" ]; then
        die "DISK_0_PATH is not set (userspace-only disks are not supported)"
    fi
    if [ ! -b "$DISK_0_PATH" ] && [ ! -f "$DISK_0_PATH" ]; then
        die "disk 0 of $INSTANCE_NAME not found at $DISK_0_PATH"
    fi
}

# dev_size PATH: size in bytes of a block device or regular file
dev_size() {
    if [ -b "$1" ]; then
        blockdev --getsize64 "$1"
    else
        wc -c < "$1" | tr -d ' '
    fi
}

# resolve_image: set IMAGE_FILE from IMAGE_NAME (upstream naming); "" = no image
resolve_image() {
    if [ -n "$IMAGE_FILE" ] || [ -z "$IMAGE_NAME" ]; then
        return 0
    fi
    case "$IMAGE_NAME" in
        .*|*/*) die "invalid image name '$IMAGE_NAME'" ;;
    esac
    case "$IMAGE_TYPE" in
        tarball) IMAGE_FILE="$IMAGE_DIR/$IMAGE_NAME-$ARCH.tar.gz" ;;
        qemu|qcow2) IMAGE_FILE="$IMAGE_DIR/$IMAGE_NAME-$ARCH.img" ;;
        raw) IMAGE_FILE="$IMAGE_DIR/$IMAGE_NAME-$ARCH.raw" ;;
        dump) IMAGE_FILE="$IMAGE_DIR/$IMAGE_NAME-$ARCH-root.dump" ;;
        *) die "unknown image type '$IMAGE_TYPE' (use qemu, raw or tarball)" ;;
    esac
}

# write_marker PATH: the "no image" disk content (two 512-byte sectors).
# Sector 0 is an MBR whose boot code prints a notice through the BIOS and
# halts (boot signature 55 AA, empty partition table); sector 1 starts with
# $IMAGE_MARKER followed by key=value lines. Nothing else is touched.
write_marker() {
    _dev="$1"
    _tmp="$(mktemp)"
    # 16-bit boot code: cli; xor ax,ax; mov ds,ax; mov si,0x7c1a; cld;
    # loop: lodsb; or al,al; jz halt; mov ah,0x0e; mov bx,7; int 0x10; jmp loop;
    # halt: hlt; jmp halt   -- followed by the NUL terminated message at 0x7c1a
    printf '\372\061\300\216\330\276\032\174\374\254\010\300\164\011\264\016'  > "$_tmp"
    printf '\273\007\000\315\020\353\362\364\353\375' >> "$_tmp"
    printf 'No operating system installed on this disk (corral image OS).\r\n' >> "$_tmp"
    printf 'Boot from CD or reinstall with an image.\r\n\000' >> "$_tmp"
    _used="$(wc -c < "$_tmp" | tr -d ' ')"
    dd if=/dev/zero bs=1 count=$((510 - _used)) 2>/dev/null >> "$_tmp"
    printf '\125\252' >> "$_tmp"
    {
        printf '%s\n' "$IMAGE_MARKER"
        printf 'instance=%s\n' "$INSTANCE_NAME"
        printf 'os=%s\n' "${INSTANCE_OS:-image}"
        printf 'variant=%s\n' "$VARIANT"
    } | dd bs=512 count=1 conv=sync 2>/dev/null >> "$_tmp"
    dd if="$_tmp" of="$_dev" bs=512 count=2 conv=notrunc 2>/dev/null
    rm -f "$_tmp"
}
