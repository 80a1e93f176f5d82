"""Files and folders on any filesystem pyarrow reads (`s3://`, `gs://`, `hdfs://`, `file://`, ...), for
`segedge run SOURCE --ray` (the [ray] extra brings pyarrow; it is imported only when a URI is used).

`Remote` is the part of `pathlib.Path` that the Ray batch run uses (name, stem, suffix, `/`, exists, ...), so its
planning and summary code works on either kind unchanged; only reading and writing differ. Writes are atomic as
local ones are: a temp name beside the target, then a move onto it, so no half-written output is ever seen.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import glob
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np

from segedge.errors import SegedgeError, first_line
from segedge.media import decode_alpha, decode_image, image_file_bytes, temp_path
from segedge.stream import ImageFolder, Images

URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # two letters at least: C:\ is a Windows drive, not a scheme
CHUNK = 1 << 20  # bytes per copy step when staging a video


def is_uri(text: str) -> bool:
    return bool(URI.match(str(text)))


@functools.cache
def open_root(root: str):
    """(filesystem, its path for the root) once per root and process: opening one may cost a request (an S3
    bucket's region), so entries are never opened one by one."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(root)
    except (OSError, ValueError) as exc:  # unknown scheme, missing library (libhdfs), bad options
        raise SegedgeError(f"cannot open the filesystem of {public(root)}: {first_line(exc)}") from None


def public(uri: str, path: str = "") -> str:
    """A URI as it can be shown and logged: no user:password, no options (they may hold keys)."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{path}"


@dataclass(frozen=True)
class Remote:
    """A file or folder on a pyarrow filesystem: `root` names the filesystem (scheme, host or bucket, options) and
    `path` is pyarrow's path in it ("bucket/photos/a.jpg" on S3, "/data/a.jpg" for file://)."""

    root: str
    path: str

    @classmethod
    def from_uri(cls, uri: str) -> Remote:
        """The URI's file or folder; an unknown scheme or a missing library (libhdfs) fails here in one line."""
        parts = urlsplit(uri)
        root = urlunsplit((parts.scheme, parts.netloc, "/", parts.query, ""))
        base, relative = open_root(root)[1], unquote(parts.path).strip("/")
        return cls(root, posixpath.join(base, relative) if relative else base)

    def __str__(self) -> str:  # the URI a person wrote, less what may hold keys; S3's and GCS's paths hold the bucket
        return public(self.root, self.path) if self.path.startswith("/") else f"{urlsplit(self.root).scheme}://{self.path}"

    @property
    def filesystem(self):
        return open_root(self.root)[0]

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> Remote:
        return Remote(self.root, posixpath.dirname(self.path))

    def __truediv__(self, name: str) -> Remote:
        return Remote(self.root, posixpath.join(self.path, name))

    def with_name(self, name: str) -> Remote:
        return self.parent / name

    def absolute(self) -> Remote:  # a URI is absolute already
        return self

    resolve = absolute

    def _type(self):
        try:
            return self.filesystem.get_file_info(self.path).type
        except OSError as exc:  # unreachable store, missing credentials, no permission
            raise SegedgeError(f"cannot read {self}: {first_line(exc)}") from None

    def exists(self) -> bool:
        import pyarrow.fs

        return self._type() != pyarrow.fs.FileType.NotFound

    def is_file(self) -> bool:
        import pyarrow.fs

        return self._type() == pyarrow.fs.FileType.File

    def is_dir(self) -> bool:
        import pyarrow.fs

        return self._type() == pyarrow.fs.FileType.Directory

    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        try:
            self.filesystem.create_dir(self.path, recursive=parents)
        except OSError as exc:
            raise SegedgeError(f"cannot create output folder {self}: {first_line(exc)}") from None

    def files(self) -> list[Remote]:
        """The files directly in this folder (one listing request), sorted."""
        import pyarrow.fs

        try:
            infos = self.filesystem.get_file_info(pyarrow.fs.FileSelector(self.path, allow_not_found=True))
        except OSError as exc:
            raise SegedgeError(f"cannot list {self}: {first_line(exc)}") from None
        return sorted((Remote(self.root, info.path) for info in infos if info.type == pyarrow.fs.FileType.File),
                      key=lambda remote: remote.path)

    def read_bytes(self) -> bytes:
        try:
            with self.filesystem.open_input_stream(self.path) as stream:
                return stream.read()
        except FileNotFoundError:
            raise SegedgeError(f"not found: {self}") from None
        except OSError as exc:
            raise SegedgeError(f"cannot read {self}: {first_line(exc)}") from None

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_atomic(self, write) -> None:
        """`write(stream)` fills a temp file beside this one, which is then moved onto it; on any error the temp
        file is removed and the target is left as it was."""
        fs, tmp = self.filesystem, str(temp_path(PurePosixPath(self.path)))
        try:
            with fs.open_output_stream(tmp) as stream:
                write(stream)
            move_onto(fs, tmp, self.path)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                fs.delete_file(tmp)
            if isinstance(exc, OSError):
                raise SegedgeError(f"cannot write {self}: {first_line(exc)}") from None
            raise


def move_onto(fs, source: str, target: str) -> None:
    try:
        fs.move(source, target)
    except NotImplementedError:  # GCS has no move; its server-side copy also makes the object appear whole
        fs.copy_file(source, target)
        fs.delete_file(source)


Location = Path | Remote


def location(text: str) -> Location:
    """A URI as a Remote, anything else as a local Path."""
    return Remote.from_uri(text) if is_uri(text) else Path(text)


def listed(text: str, folder: Location) -> list[Location]:
    """The paths a list file names, one per line (blank lines and # comments ignored): URIs as they are, the rest
    relative to the list's folder."""
    lines = (line.strip() for line in text.splitlines())
    return [location(line) if is_uri(line) else folder / line for line in lines if line and not line.startswith("#")]


def remote_candidates(source: str) -> tuple[Remote, list[Remote] | None]:
    """(the source, its files to filter as media) for a folder or glob URI; (the source, None) for one file.
    Wildcards may stand in the file name only: object stores have no folders to walk cheaply."""
    remote = Remote.from_uri(source)
    if glob.has_magic(remote.path):
        if glob.has_magic(remote.parent.path):
            raise SegedgeError(f"{source}: on a remote filesystem wildcards may stand in the file name only")
        pattern = remote.name  # glob's rules: case-sensitive, hidden files only when the pattern starts with "."
        return remote, [file for file in remote.parent.files() if fnmatch.fnmatchcase(file.name, pattern)
                        and (pattern.startswith(".") or not file.name.startswith("."))]
    return (remote, None) if remote.is_file() else (remote, remote.files())


class AnyImages(Images):
    """Images read from local paths as Images reads them, or from a pyarrow filesystem: the same bytes decoded by
    the same functions, so the pixels are the same."""

    def read(self, path: Location) -> tuple[np.ndarray, np.ndarray | None]:
        if not isinstance(path, Remote):
            return super().read(path)
        data = np.frombuffer(path.read_bytes(), np.uint8)
        rgb = decode_image(data, str(path))
        return rgb, self.fitting_alpha(path, rgb, decode_alpha(data)) if self.keep_alpha else None


class RemoteImageFolder(ImageFolder):
    """ImageFolder's names in a folder on a pyarrow filesystem, each file written atomically (write_atomic). The
    driver makes the folder before the run; object stores have none to remove afterwards."""

    def __init__(self, folder: Remote, suffix_for):
        self.folder, self.suffix_for, self.written, self.created = folder, suffix_for, 0, False

    def __enter__(self):
        return self

    def write(self, image: np.ndarray, frame) -> None:
        out = self.output(frame.path)
        if out == frame.path:
            raise SegedgeError(f"output {out} is the input; choose another -o so the input is never overwritten")
        encoded = image_file_bytes(out, image)
        out.write_atomic(lambda stream: stream.write(encoded))
        self.written += 1

    def __exit__(self, *exc) -> None:
        pass


@contextlib.contextmanager
def local_copy(source: Location) -> Iterator[Path]:
    """A local path to read `source` from: itself when local, else a temp copy with its name (videos are decoded
    from files; the name keeps the container's extension)."""
    if not isinstance(source, Remote):
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="segedge-") as folder:
        staged = Path(folder) / source.name
        try:
            with source.filesystem.open_input_stream(source.path) as stream, staged.open("wb") as out:
                shutil.copyfileobj(stream, out, CHUNK)
        except FileNotFoundError:
            raise SegedgeError(f"not found: {source}") from None
        except OSError as exc:
            raise SegedgeError(f"cannot read {source}: {first_line(exc)}") from None
        yield staged


@contextlib.contextmanager
def local_output(target: Location) -> Iterator[Path]:
    """A local path to write `target` through: itself when local, else a temp file with its name that is
    written onto the target (atomically) when the block succeeds."""
    if not isinstance(target, Remote):
        yield target
        return
    with tempfile.TemporaryDirectory(prefix="segedge-") as folder:
        staged = Path(folder) / target.name
        yield staged
        with staged.open("rb") as made:
            target.write_atomic(lambda stream: shutil.copyfileobj(made, stream, CHUNK))
