"""The direct path for whole data frames, against the ``websockets`` protocol it stands in for."""

from __future__ import annotations

from websockets.frames import Opcode
from websockets.protocol import Protocol, Side

from kyoukai.backends._frames import FrameBoundaries, FrameReader, data_frame, parse_data_frames


def client_bytes(*messages: str | bytes) -> bytes:
    client = Protocol(Side.CLIENT, max_size=None)
    for message in messages:
        if isinstance(message, str):
            client.send_text(message.encode())
        else:
            client.send_binary(message)
    return b"".join(client.data_to_send())


MESSAGES: list[str | bytes] = ["hi", b"\x00" * 125, b"b" * 126, "t" * 65535, b"L" * 65536]
WIRE = client_bytes(*MESSAGES)


def test_whole_frames_are_read_and_unmasked() -> None:
    messages, used = parse_data_frames(WIRE, 1 << 20)
    assert used == len(WIRE)
    assert [p.decode() if t else p for p, t in messages] == MESSAGES


def test_a_cut_read_stops_at_the_last_whole_frame() -> None:
    boundaries = {0}
    for count in range(1, len(MESSAGES) + 1):
        boundaries.add(len(client_bytes(*MESSAGES[:count])))
    for cut in range(len(WIRE) + 1):
        messages, used = parse_data_frames(WIRE[:cut], 1 << 20)
        assert used in boundaries and used <= cut and cut - used < len(WIRE)
        assert len(messages) == sorted(boundaries).index(used)


def test_anything_else_is_left_to_the_protocol() -> None:
    client = Protocol(Side.CLIENT, max_size=None)
    client.send_ping(b"p")
    client.send_text(b"frag", fin=False)
    for other in [b"".join(client.data_to_send()), b"\x81\x02hi"]:  # control, fragment, unmasked
        assert parse_data_frames(other, 1 << 20) == ([], 0)
    assert parse_data_frames(client_bytes(b"x" * 200), 100) == ([], 0)  # over the limit


def test_server_frames_read_back_through_websockets() -> None:
    client = Protocol(Side.CLIENT, max_size=None)
    client.receive_data(
        b"".join(data_frame(m, t) for m, t in [(b"a", True), (b"b" * 70000, False)])
    )
    frames = [(f.opcode, len(f.data)) for f in client.events_received()]  # type: ignore[union-attr]
    assert frames == [(Opcode.TEXT, 1), (Opcode.BINARY, 70000)]


def read_in_pieces(reader: FrameReader, data: bytes, cuts: list[int]) -> list[str | bytes]:
    """Feed ``data`` cut at ``cuts``; nothing may be left to the protocol."""
    messages: list[str | bytes] = []
    for start, stop in zip([0, *cuts], [*cuts, len(data)], strict=True):
        read, rest = reader.feed(data[start:stop])
        assert rest == b""
        messages += [p.decode() if t else p for p, t in read]
    assert not reader.pending
    return messages


def test_a_frame_cut_anywhere_is_assembled() -> None:
    # Headers of 6, 8 and 14 bytes; every cut in two, and a frame read one byte at a time.
    messages: list[str | bytes] = ["hi", "t" * 300, b"L" * 65536, b"end"]
    wire = client_bytes(*messages)
    reader = FrameReader(1 << 20)
    for cut in range(len(wire) + 1):
        assert read_in_pieces(reader, wire, [cut]) == messages
    assert read_in_pieces(reader, wire, list(range(1, len(wire)))) == messages


def test_a_frame_over_the_limit_is_left_to_the_protocol_from_its_header() -> None:
    wire = client_bytes(b"x" * 200)  # 8 bytes of header
    reader = FrameReader(100)
    assert reader.feed(wire[:50]) == ([], wire[:50])
    assert not reader.pending
    assert reader.feed(wire[:3]) == ([], b"")  # the length is not known yet
    assert reader.feed(wire[3:50]) == ([], wire[:50])
    assert not reader.pending


def test_control_frames_and_fragments_go_to_the_protocol_at_their_boundary() -> None:
    client = Protocol(Side.CLIENT, max_size=None)
    client.send_ping(b"p")
    client.send_binary(b"f" * 1000, fin=False)
    rest = b"".join(client.data_to_send())
    whole = client_bytes("first")
    reader = FrameReader(1 << 20)
    assert reader.feed(whole + rest) == ([(b"first", True)], rest)
    assert reader.feed(rest[:1]) == ([], rest[:1])


def test_a_frame_begun_is_released_whole() -> None:
    wire = client_bytes(b"r" * 1000)
    reader = FrameReader(1 << 20)
    for cut in (1, 5, 8, 12, 500):
        assert reader.feed(wire[:cut]) == ([], b"")
        assert reader.pending
        assert reader.release() == wire[:cut]
        assert not reader.pending


def test_frame_boundaries_are_known_wherever_the_reads_cut() -> None:
    """Headers of every size (payloads of 0, 125, 126, 65535 and 65536 bytes, masked), and a
    ping, given in two reads cut at every offset near each boundary: between frames exactly
    where a frame ends, inside one everywhere else."""
    wire = WIRE + client_bytes("") + b"\x89\x80" + bytes(4)  # an empty masked ping
    ends = []
    pos = 0
    for size in (2, 125, 126, 65535, 65536, 0, 0):
        header = 2 + (2 if 126 <= size < 65536 else 8 if size >= 65536 else 0) + 4
        pos += header + size
        ends.append(pos)
    assert ends[-1] == len(wire)
    cuts = {end + delta for end in [0, *ends] for delta in range(-15, 16)}
    for cut in sorted(c for c in cuts if 0 < c < len(wire)):
        boundaries = FrameBoundaries()
        boundaries.feed(wire[:cut])
        assert boundaries.between == (cut in ends), cut
        boundaries.feed(wire[cut:])
        assert boundaries.between, cut
