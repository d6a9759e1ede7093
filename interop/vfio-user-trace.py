#!/usr/bin/env python3
"""vfio-user-trace: a logging proxy between a vfio-user client and server.

    vfio-user-trace.py --listen CLIENT_SOCK --connect SERVER_SOCK [--log FILE]

Listens on CLIENT_SOCK; for each client it connects to SERVER_SOCK and
passes whole messages both ways, file descriptors (SCM_RIGHTS) included,
logging one line per message: time, direction, msg_id, command, type,
size, number of fds, and the fields that matter for the command (VERSION's
JSON, DMA_MAP's window, region and IRQ indexes, access offsets, errors).
Each line is written before its message is forwarded, so a reply never
shows before its request. Stops on SIGTERM or SIGINT.
"""
import argparse
import array
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

COMMANDS = {
    1: "VERSION", 2: "DMA_MAP", 3: "DMA_UNMAP", 4: "DEVICE_GET_INFO",
    5: "DEVICE_GET_REGION_INFO", 6: "DEVICE_GET_REGION_IO_FDS",
    7: "DEVICE_GET_IRQ_INFO", 8: "DEVICE_SET_IRQS", 9: "REGION_READ",
    10: "REGION_WRITE", 11: "DMA_READ", 12: "DMA_WRITE", 13: "DEVICE_RESET",
    14: "DIRTY_PAGES", 15: "REGION_WRITE_MULTI", 16: "DEVICE_FEATURE",
    17: "MIG_DATA_READ", 18: "MIG_DATA_WRITE", 0x7F01: "VFPM_POWER_STATUS",
}
HEADER = struct.Struct("<HHIII")  # msg_id, command, msg_size, flags, error_no
F_REPLY, F_NO_REPLY, F_ERROR = 0x1, 0x10, 0x20
MAX_FDS = 253
IRQ_INDEX = {0: "INTX", 1: "MSI", 2: "MSIX", 3: "ERR", 4: "REQ"}
IRQ_DATA = {0x1: "NONE", 0x2: "BOOL", 0x4: "EVENTFD"}
IRQ_ACTION = {0x8: "MASK", 0x10: "UNMASK", 0x20: "TRIGGER"}


class Log:
    """One line per message, shared by every relay thread."""

    def __init__(self, path):
        self.out = open(path, "a", buffering=1) if path else sys.stdout
        self.lock = threading.Lock()
        self.start = time.monotonic()

    def write(self, line):
        with self.lock:
            self.out.write("%9.3f %s\n" % (time.monotonic() - self.start, line))


def recv_exact(sock, size, fds):
    """SIZE bytes from SOCK, collecting any fds that come along; None at EOF."""
    data = bytearray()
    fd_room = socket.CMSG_SPACE(MAX_FDS * 4)
    while len(data) < size:
        chunk, anc, _flags, _addr = sock.recvmsg(size - len(data), fd_room)
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % 4])
                fds.extend(got)
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def describe(command, flags, payload):
    """The fields worth seeing for COMMAND (request or reply)."""
    reply = flags & 0xF == F_REPLY
    try:
        if command == 1 and len(payload) >= 4:
            major, minor = struct.unpack_from("<HH", payload)
            text = payload[4:].split(b"\0", 1)[0].decode(errors="replace")
            try:
                text = json.dumps(json.loads(text), separators=(",", ":"))
            except ValueError:
                pass
            return "version %d.%d %s" % (major, minor, text)
        if command == 2 and len(payload) >= 32:
            argsz, fl, off, addr, size = struct.unpack_from("<IIQQQ", payload)
            return "argsz %d flags %#x addr %#x size %#x offset %#x" % (argsz, fl, addr, size, off)
        if command == 3 and len(payload) >= 24:
            argsz, fl, addr, size = struct.unpack_from("<IIQQ", payload)
            return "argsz %d flags %#x addr %#x size %#x" % (argsz, fl, addr, size)
        if command == 4 and len(payload) >= 16:
            argsz, fl, nreg, nirq = struct.unpack_from("<IIII", payload)
            return "argsz %d flags %#x regions %d irqs %d" % (argsz, fl, nreg, nirq)
        if command == 5 and len(payload) >= 32:
            argsz, fl, idx, cap, size, off = struct.unpack_from("<IIIIQQ", payload)
            if not reply:
                return "argsz %d index %d" % (argsz, idx)
            return "argsz %d index %d flags %#x cap_offset %#x size %#x offset %#x" % (
                argsz, idx, fl, cap, size, off)
        if command == 7 and len(payload) >= 16:
            argsz, fl, idx, count = struct.unpack_from("<IIII", payload)
            what = "index %d (%s)" % (idx, IRQ_INDEX.get(idx, "?"))
            return "argsz %d %s" % (argsz, what) + ("" if not reply else " flags %#x count %d" % (fl, count))
        if command == 8 and len(payload) >= 20:
            argsz, fl, idx, start, count = struct.unpack_from("<IIIII", payload)
            data = "|".join(v for k, v in IRQ_DATA.items() if fl & k)
            action = "|".join(v for k, v in IRQ_ACTION.items() if fl & k)
            return "argsz %d %s %s|%s start %d count %d" % (
                argsz, IRQ_INDEX.get(idx, str(idx)), data, action, start, count)
        if command in (9, 10) and len(payload) >= 16:
            off, region, count = struct.unpack_from("<QII", payload)
            text = "region %d offset %#x count %d" % (region, off, count)
            value = payload[16:16 + count]
            if value and count <= 8 and (command == 10) != reply:
                text += " data %s" % value[::-1].hex()
            return text
        if command == 15 and len(payload) >= 8:
            return "writes %d" % struct.unpack_from("<Q", payload)[0]
        if command == 16 and len(payload) >= 8:
            argsz, fl = struct.unpack_from("<II", payload)
            return "argsz %d flags %#x" % (argsz, fl)
    except struct.error:
        pass
    return ""


def relay(src, dst, direction, log):
    """Whole messages from SRC to DST until either side closes."""
    try:
        while True:
            fds = []
            head = recv_exact(src, HEADER.size, fds)
            if head is None:
                break
            msg_id, command, size, flags, error_no = HEADER.unpack(head)
            body = recv_exact(src, max(size - HEADER.size, 0), fds) if size > HEADER.size else b""
            if body is None:
                log.write("%s truncated message (msg_id %d command %d)" % (direction, msg_id, command))
                break
            kind = "reply" if flags & 0xF == F_REPLY else "cmd"
            if flags & F_NO_REPLY:
                kind += "|no_reply"
            if flags & F_ERROR:
                kind += "|ERROR %s" % os.strerror(error_no)
            name = COMMANDS.get(command, "CMD_%d" % command)
            log.write("%s id=%-5d %-22s %-7s size=%-5d fds=%d %s" % (
                direction, msg_id, name, kind, size, len(fds),
                describe(command, flags, body)))
            # Logged first, so that a reply never shows before its request.
            msg = head + body
            if fds:
                dst.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            else:
                dst.sendall(msg)
            for fd in fds:
                os.close(fd)
    except OSError as err:
        log.write("%s closed: %s" % (direction, err))
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve_client(client, upstream_path, log, number):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.connect(upstream_path)
    except OSError as err:
        log.write("conn %d: cannot connect to %s: %s" % (number, upstream_path, err))
        client.close()
        return
    log.write("conn %d: open" % number)
    threads = [
        threading.Thread(target=relay, args=(client, server, "c>s", log), daemon=True),
        threading.Thread(target=relay, args=(server, client, "s>c", log), daemon=True),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    server.close()
    log.write("conn %d: closed" % number)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--connect", required=True)
    parser.add_argument("--log")
    args = parser.parse_args()
    log = Log(args.log)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(args.listen):
        os.unlink(args.listen)
    listener.bind(args.listen)
    listener.listen(8)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    number = 0
    try:
        while True:
            client, _ = listener.accept()
            number += 1
            threading.Thread(target=serve_client, args=(client, args.connect, log, number),
                             daemon=True).start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        listener.close()
        os.unlink(args.listen)


if __name__ == "__main__":
    main()
