"""The engine's named pipe on Windows: only this user's processes on this machine may open it.

`multiprocessing.connection`'s PipeListener creates its pipes with fixed flags and the default security:
any local account can open a pipe whose name it learns, and so can a client across the network (the
HMAC handshake still refused them all, but they could try). Ours differs in three flags and one
descriptor, and in nothing else: it hands out the stdlib's own `PipeConnection`s (message-mode pipes,
overlapped I/O), so transport.py's handshake and framing are the same on every pipe.

- `PIPE_REJECT_REMOTE_CLIENTS`: a client on another machine (or through `\\\\localhost\\pipe\\...`, which
  goes through the network redirector) is refused by the system before we see it.
- A DACL of one entry, this user's SID with full access, marked protected (`P`: nothing inherited). Not even
  SYSTEM or the Administrators group: the engine serves this user's app and command line, nobody else.
- `FILE_FLAG_FIRST_PIPE_INSTANCE` on the first instance: if another process already made a pipe of that name
  (to pose as the engine), creating ours fails instead of joining theirs.
- The client opens the pipe at `SECURITY_IDENTIFICATION`: a server that is not our engine (at a stale
  address) may learn who connected, but cannot act as them.

The flag sets and the SDDL string are pure (tested on every platform); the rest runs only on Windows
(tests/test_windows_pipe.py, on the Windows runners).
"""

from __future__ import annotations

import functools
import re
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

# winbase.h's values, spelled here so the pure parts run everywhere (_winapi exists only on Windows).
PIPE_ACCESS_DUPLEX = 0x00000003
FILE_FLAG_OVERLAPPED = 0x40000000
FILE_FLAG_FIRST_PIPE_INSTANCE = 0x00080000
PIPE_TYPE_MESSAGE = 0x00000004
PIPE_READMODE_MESSAGE = 0x00000002
PIPE_WAIT = 0x00000000
PIPE_REJECT_REMOTE_CLIENTS = 0x00000008
PIPE_UNLIMITED_INSTANCES = 255
SECURITY_SQOS_PRESENT = 0x00100000
SECURITY_IDENTIFICATION = 0x00010000
GENERIC_READ = 0x80000000
GENERIC_WRITE = 0x40000000
OPEN_EXISTING = 3
BUFFER_BYTES = 8192  # the stdlib's: a hint for the pipe's buffers, not a limit on a message
CONNECT_TIMEOUT_S = 20.0  # how long a client waits for a free instance (the stdlib's too)

_SID = re.compile(r"S-1-\d+(-\d+)+")


def user_only_sddl(sid: str) -> str:
    """The security descriptor, in SDDL, of a pipe only `sid` may open: a protected DACL (`D:P`, nothing
    inherited from the defaults) with one entry allowing that user generic full access (`A;;GA;;;SID`).

    >>> user_only_sddl("S-1-5-21-1-2-3-1001")
    'D:P(A;;GA;;;S-1-5-21-1-2-3-1001)'
    """
    if not _SID.fullmatch(sid):
        raise ValueError(f"not a SID string: {sid!r}")
    return f"D:P(A;;GA;;;{sid})"


def open_mode(first: bool) -> int:
    """CreateNamedPipe's open mode: both ways, overlapped (the stdlib's PipeConnection waits on events), and
    on the first instance, a refusal to join a pipe someone else made under that name."""
    mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED
    return mode | FILE_FLAG_FIRST_PIPE_INSTANCE if first else mode


def pipe_mode() -> int:
    """CreateNamedPipe's pipe mode: messages (one `send_bytes` is one message), blocking, local clients only."""
    return PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS


def client_flags() -> int:
    """CreateFile's flags for the client: overlapped, and the server may identify us but not impersonate us."""
    return FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION


class UserOnlyPipeListener:
    """Accepts connections on `address` (`\\\\.\\pipe\\...`) from this user's local processes only, as
    `multiprocessing.connection.PipeConnection`s. Windows only."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._security = _SecurityAttributes(user_only_sddl(current_user_sid()))
        try:
            self._waiting = [self._new_instance(first=True)]  # always one instance for the next client to find
        except BaseException:  # the name is taken (access denied: FILE_FLAG_FIRST_PIPE_INSTANCE), or worse
            self._security.free()
            raise

    def _new_instance(self, first: bool = False) -> int:
        import _winapi

        return _winapi.CreateNamedPipe(self.address, open_mode(first), pipe_mode(), PIPE_UNLIMITED_INSTANCES,
                                       BUFFER_BYTES, BUFFER_BYTES, _winapi.NMPWAIT_WAIT_FOREVER,
                                       self._security.address)

    def accept(self) -> Connection:
        """The next client's connection (blocks; as PipeListener.accept, with overlapped I/O so that the
        wait releases the GIL and a client that connected and left at once still counts)."""
        import _winapi
        from multiprocessing.connection import PipeConnection

        self._waiting.append(self._new_instance())
        handle = self._waiting.pop(0)
        try:
            overlapped = _winapi.ConnectNamedPipe(handle, overlapped=True)
        except OSError as error:
            if error.winerror != _winapi.ERROR_NO_DATA:  # NO_DATA: connected and already gone; reads see the end
                _winapi.CloseHandle(handle)
                raise
        else:
            try:
                _winapi.WaitForMultipleObjects([overlapped.event], False, _winapi.INFINITE)
            except BaseException:
                overlapped.cancel()
                _winapi.CloseHandle(handle)
                raise
            _, error = overlapped.GetOverlappedResult(True)
            if error:
                _winapi.CloseHandle(handle)
                raise OSError(None, "the pipe connection failed", None, error)
        return PipeConnection(handle)

    def close(self) -> None:
        import _winapi

        waiting, self._waiting = self._waiting, []
        for handle in waiting:
            _winapi.CloseHandle(handle)
        self._security.free()


def pipe_client(address: str, timeout: float = CONNECT_TIMEOUT_S) -> Connection:
    """A connection to the pipe at `address` (OSError if none is there), as multiprocessing's PipeClient but
    opened at `SECURITY_IDENTIFICATION`."""
    import _winapi
    from multiprocessing.connection import PipeConnection

    deadline = time.monotonic() + timeout
    while True:
        try:
            _winapi.WaitNamedPipe(address, 1000)
            handle = _winapi.CreateFile(address, GENERIC_READ | GENERIC_WRITE, 0, _winapi.NULL, OPEN_EXISTING,
                                        client_flags(), _winapi.NULL)
            break
        except OSError as error:
            if error.winerror not in (_winapi.ERROR_SEM_TIMEOUT, _winapi.ERROR_PIPE_BUSY) \
                    or time.monotonic() > deadline:
                raise
    _winapi.SetNamedPipeHandleState(handle, PIPE_READMODE_MESSAGE, None, None)
    return PipeConnection(handle)


def current_user_sid() -> str:
    """This process's user, as a SID string (`S-1-5-21-...`): the same for its elevated and normal runs."""
    import ctypes
    from ctypes import wintypes

    advapi32, kernel32 = _windows_libraries()
    token = wintypes.HANDLE()
    if not advapi32.OpenProcessToken(kernel32.GetCurrentProcess(), 0x0008, ctypes.byref(token)):  # TOKEN_QUERY
        raise ctypes.WinError(ctypes.get_last_error())
    try:
        size = wintypes.DWORD()
        advapi32.GetTokenInformation(token, 1, None, 0, ctypes.byref(size))  # 1: TokenUser; asks the size
        buffer = ctypes.create_string_buffer(size.value)
        if not advapi32.GetTokenInformation(token, 1, buffer, size, ctypes.byref(size)):
            raise ctypes.WinError(ctypes.get_last_error())
        sid = ctypes.c_void_p.from_buffer(buffer)  # TOKEN_USER starts with SID_AND_ATTRIBUTES's PSID
        text = ctypes.c_void_p()
        if not advapi32.ConvertSidToStringSidW(sid, ctypes.byref(text)):
            raise ctypes.WinError(ctypes.get_last_error())
        try:
            return ctypes.wstring_at(text.value)
        finally:
            kernel32.LocalFree(text)
    finally:
        kernel32.CloseHandle(token)


class _SecurityAttributes:
    """A SECURITY_ATTRIBUTES holding the descriptor an SDDL string describes, alive until `free()`."""

    def __init__(self, sddl: str) -> None:
        import ctypes
        from ctypes import wintypes

        class SECURITY_ATTRIBUTES(ctypes.Structure):
            _fields_ = [("nLength", wintypes.DWORD), ("lpSecurityDescriptor", ctypes.c_void_p),
                        ("bInheritHandle", wintypes.BOOL)]

        advapi32, self._kernel32 = _windows_libraries()
        self._descriptor = ctypes.c_void_p()
        if not advapi32.ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, 1, ctypes.byref(self._descriptor),
                                                                             None):  # 1: SDDL_REVISION_1
            raise ctypes.WinError(ctypes.get_last_error())
        self._attributes = SECURITY_ATTRIBUTES(ctypes.sizeof(SECURITY_ATTRIBUTES), self._descriptor, False)
        self.address = ctypes.addressof(self._attributes)

    def free(self) -> None:
        if self._descriptor:
            self._kernel32.LocalFree(self._descriptor)
            self._descriptor = None
            self.address = 0


@functools.cache
def _windows_libraries():
    """advapi32 and kernel32 with the signatures we call (64-bit handles and pointers need them declared)."""
    import ctypes
    from ctypes import wintypes

    if sys.platform != "win32":
        raise OSError("named pipes with a user-only DACL are Windows' alone")
    advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    kernel32.GetCurrentProcess.argtypes = []
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    kernel32.LocalFree.restype = ctypes.c_void_p
    kernel32.LocalFree.argtypes = [ctypes.c_void_p]
    advapi32.OpenProcessToken.argtypes = [wintypes.HANDLE, wintypes.DWORD, ctypes.POINTER(wintypes.HANDLE)]
    advapi32.GetTokenInformation.argtypes = [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p, wintypes.DWORD,
                                             ctypes.POINTER(wintypes.DWORD)]
    advapi32.ConvertSidToStringSidW.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    advapi32.ConvertStringSecurityDescriptorToSecurityDescriptorW.argtypes = [
        wintypes.LPCWSTR, wintypes.DWORD, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(wintypes.ULONG)]
    return advapi32, kernel32
