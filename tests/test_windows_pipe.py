"""The engine's named pipe on Windows lets in this user's local processes alone (issue 25).

The flags and the security descriptor are pure and checked everywhere. The pipe itself runs on the Windows
runners: another user's token cannot be made there, but what decides their fate can be read back (the
pipe's DACL names our SID and nothing else), a pipe squatted under our name is refused, a client through the
network redirector (`\\\\localhost\\pipe\\...`) is refused, and the handshake and framing work through it.
"""

from __future__ import annotations

import re
import sys
import threading

import pytest

from engine.process import transport, windows_pipe
from engine.process.windows_pipe import (
    FILE_FLAG_FIRST_PIPE_INSTANCE,
    FILE_FLAG_OVERLAPPED,
    PIPE_ACCESS_DUPLEX,
    PIPE_READMODE_MESSAGE,
    PIPE_REJECT_REMOTE_CLIENTS,
    PIPE_TYPE_MESSAGE,
    SECURITY_IDENTIFICATION,
    SECURITY_SQOS_PRESENT,
    client_flags,
    open_mode,
    pipe_mode,
    user_only_sddl,
)

windows_only = pytest.mark.skipif(sys.platform != "win32", reason="named pipes and DACLs are Windows'")


def test_the_pipe_lets_in_one_sid_with_nothing_inherited():
    sid = "S-1-5-21-3623811015-3361044348-30300820-1013"
    assert user_only_sddl(sid) == f"D:P(A;;GA;;;{sid})"


@pytest.mark.parametrize("not_a_sid", ["", "WD", "S-1-5-21-1)(A;;GA;;;WD", "S-1-5-21-1 ", "s-1-5-18"])
def test_anything_but_a_sid_string_is_refused(not_a_sid):
    """Nothing but a SID reaches the SDDL: a string that closed the entry could add one for Everyone."""
    with pytest.raises(ValueError, match="not a SID"):
        user_only_sddl(not_a_sid)


def test_the_pipe_takes_local_clients_only_in_messages_and_refuses_to_join_someone_elses():
    assert pipe_mode() & PIPE_REJECT_REMOTE_CLIENTS
    assert pipe_mode() & PIPE_TYPE_MESSAGE and pipe_mode() & PIPE_READMODE_MESSAGE
    assert open_mode(first=True) & FILE_FLAG_FIRST_PIPE_INSTANCE
    assert not open_mode(first=False) & FILE_FLAG_FIRST_PIPE_INSTANCE  # the later instances join our own pipe
    for mode in (open_mode(first=True), open_mode(first=False)):
        assert mode & FILE_FLAG_OVERLAPPED and mode & PIPE_ACCESS_DUPLEX == PIPE_ACCESS_DUPLEX
    assert client_flags() & SECURITY_SQOS_PRESENT and client_flags() & SECURITY_IDENTIFICATION
    assert client_flags() & FILE_FLAG_OVERLAPPED  # the stdlib's PipeConnection needs overlapped handles


@windows_only
def test_our_spelling_of_the_flags_is_windows():
    import _winapi

    for name in ("PIPE_ACCESS_DUPLEX", "FILE_FLAG_OVERLAPPED", "FILE_FLAG_FIRST_PIPE_INSTANCE", "PIPE_TYPE_MESSAGE",
                 "PIPE_READMODE_MESSAGE", "PIPE_WAIT", "PIPE_UNLIMITED_INSTANCES", "GENERIC_READ", "GENERIC_WRITE",
                 "OPEN_EXISTING"):
        assert getattr(windows_pipe, name) == getattr(_winapi, name), name


def trustees(handle: int) -> tuple[str, list[str]]:
    """The DACL of the pipe `handle` is on, read back from the system: (its SDDL, the SID of each entry)."""
    import ctypes
    from ctypes import wintypes

    advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.LocalFree.argtypes = [ctypes.c_void_p]
    kernel32.LocalFree.restype = ctypes.c_void_p
    advapi32.GetSecurityInfo.argtypes = [wintypes.HANDLE, ctypes.c_int, wintypes.DWORD, ctypes.c_void_p,
                                         ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                         ctypes.POINTER(ctypes.c_void_p)]
    advapi32.GetSecurityInfo.restype = wintypes.DWORD
    advapi32.ConvertSecurityDescriptorToStringSecurityDescriptorW.argtypes = [
        ctypes.c_void_p, wintypes.DWORD, wintypes.DWORD, ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    descriptor, text = ctypes.c_void_p(), ctypes.c_void_p()
    dacl_only = 0x4  # DACL_SECURITY_INFORMATION
    error = advapi32.GetSecurityInfo(handle, 6, dacl_only, None, None, None, None, ctypes.byref(descriptor))
    assert error == 0, ctypes.WinError(error)  # 6: SE_KERNEL_OBJECT
    try:
        assert advapi32.ConvertSecurityDescriptorToStringSecurityDescriptorW(descriptor, 1, dacl_only,
                                                                             ctypes.byref(text), None)
        sddl = ctypes.wstring_at(text.value)
        kernel32.LocalFree(text)
    finally:
        kernel32.LocalFree(descriptor)
    return sddl, [canonical_sid(entry.split(";")[5]) for entry in re.findall(r"\(([^)]*)\)", sddl)]


def canonical_sid(text: str) -> str:
    """A SID as `S-1-...`, also when SDDL wrote it as an alias (`SY`, `WD`, or `LA` for a machine's built-in
    Administrator, which a runner's account may be)."""
    import ctypes

    advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.LocalFree.argtypes = [ctypes.c_void_p]
    kernel32.LocalFree.restype = ctypes.c_void_p
    advapi32.ConvertStringSidToSidW.argtypes = [ctypes.c_wchar_p, ctypes.POINTER(ctypes.c_void_p)]
    advapi32.ConvertSidToStringSidW.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    sid, back = ctypes.c_void_p(), ctypes.c_void_p()
    assert advapi32.ConvertStringSidToSidW(text, ctypes.byref(sid)), text
    try:
        assert advapi32.ConvertSidToStringSidW(sid, ctypes.byref(back))
        result = ctypes.wstring_at(back.value)
        kernel32.LocalFree(back)
        return result
    finally:
        kernel32.LocalFree(sid)


def accept_and_authenticate(listener, key: bytes, served: list) -> None:
    conn = listener.accept()
    transport.authenticate_client(conn, key)
    served.append(conn)


@windows_only
def test_the_engines_pipe_lets_in_this_user_alone_and_the_handshake_works_through_it(tmp_path):
    from multiprocessing.connection import Listener

    from engine.process.protocol import MAX_MESSAGE_BYTES

    address, family = transport.new_address(tmp_path)
    key = transport.new_key()
    listener = transport.listen(address, family)
    served: list = []
    server = threading.Thread(target=accept_and_authenticate, args=(listener, key, served))
    server.start()
    client = transport.connect(address, family, key)
    server.join(10)
    try:
        sddl, sids = trustees(client.fileno())
        assert sddl.startswith("D:P") and sids == [windows_pipe.current_user_sid()], sddl
        big = bytes(range(256)) * (MAX_MESSAGE_BYTES // 512)  # one frame of 8 MiB: one pipe message
        sender = threading.Thread(target=served[0].send_bytes, args=(big,))  # it waits for the reader
        sender.start()
        assert transport.receive_bytes(client) == big
        sender.join(10)
        client.send_bytes(b"and back")
        assert served[0].recv_bytes() == b"and back"
    finally:
        client.close()
        for conn in served:
            conn.close()
        listener.close()
    stdlib = Listener(address + "-stdlib", "AF_PIPE")  # what the engine had: the default DACL lets in others
    opened = transport.pipe_client(address + "-stdlib")
    try:
        assert set(trustees(opened.fileno())[1]) - {windows_pipe.current_user_sid()}
    finally:
        opened.close()
        stdlib.close()


@windows_only
def test_a_pipe_someone_else_made_under_our_name_is_not_joined(tmp_path):
    import _winapi

    address, family = transport.new_address(tmp_path)
    squatter = _winapi.CreateNamedPipe(address, PIPE_ACCESS_DUPLEX, PIPE_TYPE_MESSAGE, 255, 8192, 8192, 0,
                                       _winapi.NULL)
    try:
        with pytest.raises(PermissionError):
            transport.listen(address, family)
    finally:
        _winapi.CloseHandle(squatter)


@windows_only
def test_a_client_through_the_network_is_refused(tmp_path):
    """`\\\\localhost\\pipe\\NAME` reaches a pipe through the SMB redirector, as a client on another machine
    would: the stdlib's pipe takes it, ours refuses it."""
    import _winapi
    from multiprocessing.connection import Listener

    def open_remotely(address: str) -> None:  # read access only: the stdlib pipe's default DACL gives everyone that
        handle = _winapi.CreateFile(address.replace("\\\\.\\", "\\\\localhost\\", 1), _winapi.GENERIC_READ,
                                    0, _winapi.NULL, _winapi.OPEN_EXISTING, 0, _winapi.NULL)
        _winapi.CloseHandle(handle)

    address, family = transport.new_address(tmp_path)
    stdlib = Listener(address + "-stdlib", "AF_PIPE")
    try:
        open_remotely(address + "-stdlib")
    except OSError as error:
        pytest.skip(f"no network path to this machine's own pipes here ({error})")
    finally:
        stdlib.close()
    listener = transport.listen(address, family)
    try:
        with pytest.raises(OSError):
            open_remotely(address)
    finally:
        listener.close()
