"""Audio passthrough: an input audio track carried into an output video, in step with the video frames."""

from __future__ import annotations

from collections import deque

AUDIO_FALLBACK = {".webm": "libopus"}  # others: AAC


class AudioTrack:
    """One audio track of the input, fed with its demuxed packets and muxed into the output as far as the video has
    come, so the file stays interleaved.

    Packets are copied unchanged when the output container accepts the codec, else transcoded (AAC, Opus for WebM).
    """

    def __init__(self, output, audio_in, suffix: str):
        self.copy = audio_in.codec_context.name in output.supported_codecs
        if self.copy:
            self.stream = output.add_stream_from_template(audio_in)
        else:
            codec = AUDIO_FALLBACK.get(suffix, "aac")
            rate = 48000 if codec == "libopus" else (audio_in.codec_context.sample_rate or 48000)  # Opus: 48 kHz
            self.stream = output.add_stream(codec, rate=rate)
        self.pending: deque[tuple[float, list]] = deque()  # (start in seconds, packets to mux)

    def feed(self, packet) -> None:
        """Queue one demuxed input packet (an empty one, at the end, flushes the decoder when transcoding)."""
        if self.copy:
            if packet.dts is None:  # the demuxer's empty flush packet
                return
            seconds = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
            packet.stream = self.stream
            self.pending.append((seconds, [packet]))
            return
        for frame in packet.decode():
            seconds = frame.time or 0.0
            frame.pts = None  # the encoder numbers its own samples
            self.pending.append((seconds, self.stream.encode(frame)))

    def write_until(self, output, seconds: float) -> None:
        """Mux every queued packet that starts at or before `seconds` of the video."""
        while self.pending and self.pending[0][0] <= seconds:
            for packet in self.pending.popleft()[1]:
                output.mux(packet)

    def finish(self, output) -> None:
        """Mux the rest, and the encoder's last packets when transcoding."""
        if not self.copy:
            self.pending.append((float("inf"), self.stream.encode(None)))
        self.write_until(output, float("inf"))
