"""Test helpers for the DAW room: synthetic drum loops of known tempo, an onset finder independent of
plugin.tempo's, and readers of the WAV chunks through libsndfile's own structs."""

from __future__ import annotations

import struct

import numpy as np

RATE = 44100


def drum_loop(bpm: float, seconds: float = 6.0, *, rate: int = RATE, offset_s: float = 0.1,
              seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Kick on 1 and 3, snare on 2 and 4, a hat on every 8th: (mono float32, onset times in s)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n, np.float32)
    t = np.arange(int(0.3 * rate)) / rate
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
    snare = rng.standard_normal(t.size) * np.exp(-t * 25) * 0.6
    hat = rng.standard_normal(t.size) * np.exp(-t * 120) * 0.25
    onsets = []
    eighth = 60.0 / bpm / 2
    k = 0
    while offset_s + k * eighth < seconds - 0.01:
        start = round((offset_s + k * eighth) * rate)
        sound = hat.copy()
        if k % 2 == 0:
            sound = sound + (kick if (k // 2) % 2 == 0 else snare)
        end = min(n, start + sound.size)
        out[start:end] += sound[: end - start].astype(np.float32)
        onsets.append(start / rate)
        k += 1
    return (out / np.abs(out).max() * 0.8).astype(np.float32), onsets


def onset_times(audio: np.ndarray, rate: int, *, threshold: float = 0.6) -> np.ndarray:
    """Hits: where the log-energy (1 ms frames) rises by at least `threshold` of the largest rise within
    3 ms, the strongest of each 60 ms (a decoded noisy decay ripples; a hit jumps). Independent of
    plugin.tempo's spectral flux."""
    rise, frame_s = _rises(audio, rate)
    order = np.argsort(rise)[::-1]
    chosen: list[int] = []
    gap = int(0.06 / frame_s)
    for index in order:
        if rise[index] < threshold * rise[order[0]]:
            break
        if all(abs(index - other) > gap for other in chosen):
            chosen.append(int(index))
    return np.array(sorted((i - RISE_FRAMES // 2) * frame_s for i in chosen))


RISE_FRAMES = 6  # a hit: the log-energy's rise over 6 ms (shorter windows catch the ripples of decoded noise)


def _rises(audio: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """Rise of log-energy over RISE_FRAMES ~1 ms frames, per frame; and the frame length in seconds."""
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    hop = rate // 1000
    frames = np.square(mono[: mono.size // hop * hop].astype(np.float64)).reshape(-1, hop).mean(axis=1)
    level = 10 * np.log10(frames + 1e-9)
    rise = np.zeros_like(level)
    rise[RISE_FRAMES:] = level[RISE_FRAMES:] - level[:-RISE_FRAMES]
    return np.maximum(rise, 0), hop / rate


def beat_deviations(audio: np.ndarray, rate: int, bpm: float, *, window_s: float = 0.03,
                    threshold: float = 0.3) -> np.ndarray:
    """For each beat of the target grid (0, 60/bpm, ...): the time of the strongest hit within window_s of
    it, minus the beat's time (s), for the beats that have a hit there (rise >= threshold x the largest)."""
    lead = int(0.05 * rate) // (rate // 1000) * (rate // 1000)  # the loop's tail plays before its head
    rise, frame_s = _rises(np.concatenate([audio[-lead:], audio]), rate)
    skip = lead // (rate // 1000)
    rise = rise[skip:]
    period = 60.0 / bpm
    out = []
    for beat in range(int((audio.shape[0] / rate - window_s) / period) + 1):
        centre = beat * period
        low = max(0, int((centre - window_s) / frame_s))
        high = min(rise.size, int((centre + window_s) / frame_s) + 1)
        if high <= low:
            continue
        index = low + int(np.argmax(rise[low:high]))
        if rise[index] >= threshold * rise.max():
            out.append((index - RISE_FRAMES // 2) * frame_s - centre)  # the middle of the rise
    return np.array(out)


def grid_deviation(onsets: np.ndarray, step_s: float) -> np.ndarray:
    """Each onset's distance to the nearest multiple of step_s (signed, seconds)."""
    return onsets - np.round(onsets / step_s) * step_s


def libsndfile_loop_info(path) -> dict:
    """libsndfile's SF_LOOP_INFO (from `acid`) through soundfile's cffi handle: SFC_GET_LOOP_INFO."""
    import soundfile
    from soundfile import _ffi, _snd

    with soundfile.SoundFile(path) as handle:
        size = 44  # sizeof(SF_LOOP_INFO): short, short, int, int, float, int, int[6]
        buffer = _ffi.new("char[]", size)
        found = _snd.sf_command(handle._file, 0x10E0, buffer, size)
        num, den, mode, beats, bpm, root = struct.unpack("<hhiifi", bytes(_ffi.buffer(buffer, 20)))
    return {"found": bool(found), "time_sig_num": num, "time_sig_den": den, "loop_mode": mode, "num_beats": beats,
            "bpm": bpm, "root_key": root}


def libsndfile_instrument(path) -> dict:
    """libsndfile's SF_INSTRUMENT (from `smpl`): SFC_GET_INSTRUMENT."""
    import soundfile
    from soundfile import _ffi, _snd

    with soundfile.SoundFile(path) as handle:
        size = 16 + 16 * 16  # int gain, 6 chars, pad, int loop_count, 16 x {int mode, uint start, end, count}
        buffer = _ffi.new("char[]", size)
        found = _snd.sf_command(handle._file, 0x10D0, buffer, size)
        raw = bytes(_ffi.buffer(buffer, size))
    loop_count = struct.unpack("<i", raw[12:16])[0]
    loops = [struct.unpack("<iIII", raw[16 + 16 * i : 32 + 16 * i]) for i in range(max(loop_count, 0))]
    return {"found": bool(found), "loop_count": loop_count, "basenote": raw[4],
            "loops": [{"mode": m, "start": s, "end": e, "count": c} for m, s, e, c in loops]}


SF_LOOP_FORWARD = 801


def synth_arpeggio(bpm: float, seconds: float = 5.1, *, rate: int = RATE, offset_s: float = 0.05,
                   seed: int = 0, room_s: float = 1.2) -> tuple[np.ndarray, list[float]]:
    """A synth arpeggio of legato 16th notes (A minor up and down, a 7-harmonic saw, 15 ms attacks, each note
    held into the next) in a room (a `room_s` exponential noise reverb, half wet), as electronic music's most
    common loop: (mono float32, note times in s).

    Its loudness hardly moves from note to note, and the room fills the gaps; only the pitch changes, so
    broadband spectral flux hears little of it (the detector before issue #27 found confidence 0.06 here,
    0.61 without the room)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    out = np.zeros(n, np.float64)
    pitches = [57, 60, 64, 69, 72, 69, 64, 60]  # A3 C4 E4 A4 C5 A4 E4 C4
    step = 60.0 / bpm / 4
    times = []
    k = 0
    while offset_s + k * step < seconds:
        start = round((offset_s + k * step) * rate)
        length = min(n - start, round(step * rate * 1.05))
        t = np.arange(length) / rate
        freq = 440.0 * 2 ** ((pitches[k % len(pitches)] - 69) / 12)
        tone = sum(np.sin(2 * np.pi * h * freq * t + rng.uniform(0, 2 * np.pi)) / h for h in range(1, 8))
        envelope = np.minimum(1.0, t / 0.015) * np.minimum(1.0, (length / rate - t) / 0.004)
        out[start : start + length] += tone * envelope * (1.0 if k % 4 == 0 else 0.85)
        times.append(start / rate)
        k += 1
    if room_s > 0:
        tail = round(room_s * rate)
        response = rng.standard_normal(tail) * np.exp(-6.9 * np.arange(tail) / tail)
        wet = np.fft.irfft(np.fft.rfft(out, n + tail) * np.fft.rfft(response, n + tail), n + tail)[:n]
        out = 0.5 * out / np.abs(out).max() + 0.5 * wet / np.abs(wet).max()
    return (out / np.abs(out).max() * 0.7).astype(np.float32), times


def synth_pad(seconds: float = 5.1, *, rate: int = RATE, seed: int = 0) -> np.ndarray:
    """A beatless pad: detuned saw chords changing at uneven times (1.3-1.9 s apart), 250 ms swells, a slow
    tremolo. Today's detector gave such pads a beat at 43-47 bpm (issue #27)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    out = np.zeros(n)
    chords = [(57, 60, 64), (53, 57, 60), (55, 59, 62), (52, 55, 59)]
    changes = np.concatenate([[0.0], np.cumsum(rng.uniform(1.3, 1.9, 3))])
    for index, start in enumerate(changes):
        end = changes[index + 1] if index + 1 < changes.size else seconds
        span = (t >= start) & (t < end + 0.3)
        local = t[span] - start
        swell = np.minimum(1.0, local / 0.25) * np.minimum(1.0, np.maximum(end + 0.3 - t[span], 0) / 0.3)
        for pitch in chords[index % len(chords)]:
            for detune in (-0.08, 0.08):
                freq = 440.0 * 2 ** ((pitch + detune - 69) / 12)
                out[span] += swell * sum(np.sin(2 * np.pi * h * freq * t[span]) / h for h in range(1, 6))
    out *= 1 + 0.15 * np.sin(2 * np.pi * 0.4 * t)
    return (out / np.abs(out).max() * 0.6).astype(np.float32)
