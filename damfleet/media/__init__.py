"""Media inspection and the external tools behind it: :mod:`~damfleet.media.probe` (ffprobe,
exiftool, libvips metadata), :mod:`~damfleet.media.detect` (what kind of media a file is) and
:mod:`~damfleet.media.tools` (finding and confining ffmpeg, ffprobe, exiftool).

Import from the modules; the package itself exports nothing.
"""

__all__: list[str] = []
