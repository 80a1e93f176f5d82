"""The streaming core: frame sources, sinks, and the one loop between them (see loop.stream)."""

from segedge.stream.loop import STAGES, Stats, stream
from segedge.stream.sinks import EndOfStream, ImageFile, ImageFolder, Sink, Tee, VideoWriter, VirtualCamera, Window
from segedge.stream.sources import Camera, Frame, Images, LiveSource, LiveVideo, Source, VideoReader

__all__ = ["STAGES", "Camera", "EndOfStream", "Frame", "ImageFile", "ImageFolder", "Images", "LiveSource",
           "LiveVideo", "Preview", "Sink", "Source", "Stats", "Tee", "VideoReader", "VideoWriter", "VirtualCamera",
           "Window", "stream"]


def __getattr__(name: str):
    """Preview on first use only: its http.server import costs every `segedge run photo.jpg` start-up."""
    if name == "Preview":
        from segedge.stream.preview import Preview

        return Preview
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
