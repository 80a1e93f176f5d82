"""The streaming core: frame sources, sinks, and the one loop between them (see loop.stream)."""

from segedge.stream.loop import STAGES, Stats, stream
from segedge.stream.sinks import EndOfStream, ImageFile, ImageFolder, Sink, VideoWriter, Window
from segedge.stream.sources import Camera, Frame, Images, Source, VideoReader

__all__ = ["STAGES", "Camera", "EndOfStream", "Frame", "ImageFile", "ImageFolder", "Images", "Sink", "Source",
           "Stats", "VideoReader", "VideoWriter", "Window", "stream"]
