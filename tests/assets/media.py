"""Media made in the tests: clips and audio with ffmpeg (testsrc2, sine), pictures with Pillow,
fonts with fontTools' FontBuilder (every glyph a box, which FreeType can draw)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from webapp.mediaprobe import ffmpeg_exe


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def make_clip(path: Path, seconds: float = 2.0, size: str = "320x180", audio: bool = True,
              spin: bool = False) -> Path:
    """A test pattern; `spin` turns its hues all the time, so any two frames differ everywhere."""
    source = f"testsrc2=size={size}:rate=25:duration={seconds}" + (",hue=H=4*t" if spin else "")
    args = ["-f", "lavfi", "-i", source]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    if path.suffix == ".webm":
        args += ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k"]
        args += ["-c:a", "libopus"] if audio else []
    else:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
        args += ["-c:a", "aac"] if audio else []
    ffmpeg(*args, "-shortest", str(path))
    return path


def make_phone_clip(path: Path, seconds: float = 2.0) -> Path:
    """A portrait clip as a phone stores it: HEVC frames in landscape (640x360) with a display
    matrix that turns them upright. Upright it is 360x640, red above and blue below."""
    stored = path.with_name(f"stored-{path.name}")
    ffmpeg("-f", "lavfi", "-i", f"color=c=red:s=360x640:r=25:d={seconds},"
           "drawbox=y=320:w=360:h=320:c=blue:t=fill,transpose=2",
           "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-tag:v", "hvc1",
           "-pix_fmt", "yuv420p", str(stored))
    ffmpeg("-display_rotation", "-90", "-i", str(stored), "-c", "copy", str(path))
    stored.unlink()
    return path


#: The SDR colours of `make_hdr_clip`'s two halves (RGB): a saturated teal and a light grey.
HDR_CLIP_COLOURS = ((15, 210, 188), (190, 190, 190))


def make_hdr_clip(path: Path, transfer: str, seconds: float = 2.0, size: str = "640x360") -> Path:
    """10-bit HEVC in BT.2020 with an HDR transfer (`arib-std-b67`: HLG, as phones record;
    `smpte2084`: PQ, HDR10): the SDR picture of HDR_CLIP_COLOURS (left half, right half) with
    its white at BT.2408's HDR reference white (203 cd/m2), tagged as a camera tags it."""
    (r1, g1, b1), (r2, g2, b2) = HDR_CLIP_COLOURS
    width = int(size.split("x")[0])
    ffmpeg("-f", "lavfi", "-i", f"color=c=0x{r2:02X}{g2:02X}{b2:02X}:s={size}:r=25:d={seconds},"
           f"drawbox=w={width // 2}:h=ih:c=0x{r1:02X}{g1:02X}{b1:02X}:t=fill,format=gbrp,"
           f"zscale=tin=bt709:min=gbr:pin=bt709:rin=full:t={transfer}:m=bt2020nc:p=bt2020:r=tv:npl=203,"
           "format=yuv420p10le",
           "-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1",
           "-x265-params", f"log-level=error:colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc",
           str(path))
    return path


def make_audio(path: Path, seconds: float = 2.0) -> Path:
    codec = {".mp3": ["-c:a", "libmp3lame"], ".wav": ["-c:a", "pcm_s16le"], ".m4a": ["-c:a", "aac"],
             ".ogg": ["-c:a", "libvorbis"]}[path.suffix]
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency=330:duration={seconds}", *codec, str(path))
    return path


def make_image(path: Path, size: tuple[int, int] = (400, 300), orientation: int | None = None,
               alpha: bool = False) -> Path:
    from PIL import Image, ImageDraw

    img = Image.new("RGBA" if alpha else "RGB", size, (0, 0, 0, 0) if alpha else (20, 90, 200))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, size[0] // 4, size[1] // 4), fill=(250, 40, 40, 255))
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}[path.suffix]
    params = {}
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        params["exif"] = exif.tobytes()
    img.save(path, format=fmt, **params)
    return path


def make_font(path: Path, chars: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ",
              cff: bool = False) -> Path:
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.t2CharStringPen import T2CharStringPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    names = [".notdef"] + [f"u{ord(c):04X}" for c in chars]
    fb = FontBuilder(1000, isTTF=not cff)
    fb.setupGlyphOrder(names)
    fb.setupCharacterMap({ord(c): f"u{ord(c):04X}" for c in chars})

    def box(pen):
        pen.moveTo((100, 0))
        pen.lineTo((100, 700))
        pen.lineTo((500, 700))
        pen.lineTo((500, 0))
        pen.closePath()

    if cff:
        strings = {}
        for name in names:
            pen = T2CharStringPen(600, None)
            box(pen)
            strings[name] = pen.getCharString()
        fb.setupCFF("TestBox", {"FullName": "Test Box"}, strings, {})
    else:
        glyphs = {}
        for name in names:
            pen = TTGlyphPen(None)
            box(pen)
            glyphs[name] = pen.glyph()
        fb.setupGlyf(glyphs)
    fb.setupHorizontalMetrics({name: (600, 100) for name in names})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    fb.setupNameTable({"familyName": "Test Box", "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=800, usWinAscent=800, usWinDescent=200)
    fb.setupPost()
    fb.save(str(path))
    return path
