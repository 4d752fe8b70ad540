"""Decoding one image file: unusual but valid images decode correctly, broken ones say why.

``load_image(path, S)`` promises a ``uint8`` tensor of shape ``(1, S, S)`` or an
:class:`~xraykit.errors.ImageError` whose one-line message names the file and the problem.
Nothing else may escape it, whatever bytes the file holds (a hypothesis test feeds it
random bytes, random valid images and damaged copies of them).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from xraykit.data.images import MAX_PIXELS, load_image
from xraykit.errors import ImageError, display_path

S = 32


def png_declaring(width: int, height: int, bit_depth: int = 8, color_type: int = 0) -> bytes:
    """A few hundred bytes of PNG whose header declares ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def jpeg_bytes(img: Image.Image, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, **save)
    return buf.getvalue()


def gradient(size: int = S) -> Image.Image:
    """Dark on the left, bright on the right."""
    return Image.fromarray(np.tile(np.linspace(0, 255, size).round().astype(np.uint8), (size, 1)), mode="L")


def assert_one_line_naming(exc: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(display_path(path) + ":"), message
    for word in words:
        assert word in message.lower(), message


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


GOOD_PNG = png(np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8))


def idat_flipped(data: bytes = GOOD_PNG, count: int = 60) -> bytes:
    """60 bytes inside the IDAT chunk inverted; the chunk's CRC left as it was."""
    out = bytearray(data)
    start = data.index(b"IDAT") + 4 + 20
    for k in range(count):
        out[start + k] ^= 0xFF
    return bytes(out)


def header_claiming(width: int, height: int, data: bytes = GOOD_PNG) -> bytes:
    """The IHDR of a 64x64 PNG rewritten (with a valid CRC) to declare ``width`` x ``height``."""
    at = data.index(b"IHDR")
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return data[: at + 4] + header + struct.pack(">I", zlib.crc32(b"IHDR" + header)) + data[at + 4 + 13 + 4 :]


# ----------------------------------------------------------------------------- broken files: an ImageError


def test_a_zero_byte_file_is_an_empty_file_error(tmp_path):
    path = tmp_path / "empty.jpeg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    assert_one_line_naming(exc, path, "empty file")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_a_truncated_jpeg_is_a_truncated_file_error(tmp_path, keep):
    data = jpeg_bytes(gradient(64))
    path = tmp_path / "cut.jpeg"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    assert_one_line_naming(exc, path, "truncated")


def test_a_jpeg_missing_only_its_end_marker_is_a_truncated_file_error(tmp_path):
    path = tmp_path / "no_eoi.jpeg"
    path.write_bytes(jpeg_bytes(gradient(64))[:-2])
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    assert_one_line_naming(exc, path, "truncated")


def test_a_text_file_named_jpeg_says_it_is_text(tmp_path):
    path = tmp_path / "notes.jpeg"
    path.write_text("patient 17, follow-up in two weeks\n")
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    assert_one_line_naming(exc, path, "not an image", "text")


def test_an_html_page_named_jpeg_says_it_looks_like_a_failed_download(tmp_path):
    path = tmp_path / "download.jpeg"
    path.write_text("<!DOCTYPE html>\n<html><body>Sign in to continue</body></html>\n")
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    assert_one_line_naming(exc, path, "html", "download")


def test_a_git_lfs_pointer_says_to_fetch_the_real_file(tmp_path):
    path = tmp_path / "scan.png"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 183457\n")
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    assert_one_line_naming(exc, path, "git lfs pointer", "git lfs pull")


@pytest.mark.parametrize("side", [30_000, 9_000])
def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, side):
    """30000 x 30000 is past Pillow's own limit, 9000 x 9000 only past xraykit's; both are refused."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(side, side))
    assert path.stat().st_size < 1_000
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    assert_one_line_naming(exc, path, f"{side * side:,} pixels", f"{MAX_PIXELS:,}", "decompression bomb")


def test_a_missing_file_is_an_image_error(tmp_path):
    path = tmp_path / "gone.png"
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    assert_one_line_naming(exc, path, "no such file")


def test_a_folder_is_an_image_error(tmp_path):
    path = tmp_path / "folder.png"
    path.mkdir()
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    assert_one_line_naming(exc, path, "folder")


def test_a_symlink_loop_is_an_image_error(tmp_path):
    path = tmp_path / "loop.jpeg"
    path.symlink_to("loop.jpeg")
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    assert_one_line_naming(exc, path, "symbolic link", "loop")


def test_a_dangling_symlink_is_an_image_error(tmp_path):
    path = tmp_path / "moved.jpeg"
    path.symlink_to(tmp_path / "elsewhere.jpeg")
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    assert_one_line_naming(exc, path, "symbolic link", "missing")


def test_a_non_utf8_file_name_is_shown_with_its_bytes_escaped(tmp_path):
    raw = os.fsencode(tmp_path) + b"/scan-\xff\xfe.jpeg"
    with open(raw, "wb") as f:
        f.write(b"\x00\x01not an image")
    path = Path(os.fsdecode(raw))
    with pytest.raises(ImageError) as exc:
        load_image(path, S)
    message = str(exc.value)
    assert "scan-\\xff\\xfe.jpeg" in message
    message.encode("utf-8")  # printable on any UTF-8 terminal: no lone surrogates


@pytest.mark.parametrize(
    "content",
    [idat_flipped(), header_claiming(2000, 2000)],
    ids=["idat-bytes-flipped", "header-2000x2000-for-64x64-data"],
)
def test_a_corrupt_png_is_an_image_error_not_a_half_black_image(tmp_path, content):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(ImageError) as exc:
        load_image(path, 32)
    assert str(exc.value).startswith(f"{path}: ") and "\n" not in str(exc.value)


def test_display_path_escapes_a_newline_so_the_error_stays_on_one_line(tmp_path):
    path = tmp_path / "two\nlines.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as exc:
        load_image(path, 32)
    assert "\n" not in str(exc.value) and "two\\nlines.png" in str(exc.value)
    assert display_path("a\tb\x1b") == "a\\tb\\x1b"


# ----------------------------------------------------------------------------- unusual but valid files: decoded


def test_a_valid_image_with_a_non_utf8_file_name_decodes(tmp_path):
    raw = os.fsencode(tmp_path) + b"/\xe9t\xe9.png"
    with open(raw, "wb") as f:
        gradient().save(f, format="PNG")
    assert torch.equal(load_image(Path(os.fsdecode(raw)), S), torch.from_numpy(np.asarray(gradient()))[None])


def test_a_16_bit_png_keeps_its_order_and_uses_the_full_range(tmp_path):
    """A 12-bit detector's values (0..4095) stored in 16 bits must not come out black or clipped."""
    values = np.tile(np.linspace(0, 4095, S).round().astype(np.uint16), (S, 1))
    path = tmp_path / "dicom_export.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    row = load_image(path, S)[0, 0]
    assert row.dtype == torch.uint8
    assert int(row[0]) == 0 and int(row[-1]) == 255
    assert bool((row[1:] >= row[:-1]).all()) and len(set(row.tolist())) > S // 2


def test_an_rgba_png_is_composited_on_black(tmp_path):
    rgba = Image.new("RGBA", (S, S), (200, 200, 200, 255))
    for x in range(S // 2):
        for y in range(S):
            rgba.putpixel((x, y), (255, 255, 255, 0))  # white but fully transparent: shows the background
    path = tmp_path / "rgba.png"
    rgba.save(path)
    img = load_image(path, S)[0]
    assert bool((img[:, : S // 2] == 0).all())
    assert bool((img[:, S // 2 + 1 :] == 200).all())


def test_a_cmyk_jpeg_is_converted_to_the_same_gray_levels(tmp_path):
    path = tmp_path / "cmyk.jpeg"
    path.write_bytes(jpeg_bytes(gradient().convert("CMYK")))
    assert Image.open(path).mode == "CMYK"
    got = load_image(path, S)[0].int()
    want = torch.from_numpy(np.asarray(gradient())).int()
    assert (got - want).abs().max() <= 8


def test_an_exif_rotated_jpeg_comes_out_upright(tmp_path):
    """Stored 2:1 landscape with the bright half on the left, EXIF orientation 6 (turn 90 degrees clockwise):
    shown upright it is portrait with the bright half on top."""
    stored = Image.new("L", (2 * S, S), 0)
    stored.paste(255, (0, 0, S, S))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpeg"
    path.write_bytes(jpeg_bytes(stored, exif=exif))
    img = load_image(path, S)[0].int()
    assert img[: S // 2 - 2].min() > 200 and img[S // 2 + 2 :].max() < 50


def test_a_jpeg_with_broken_exif_still_decodes(tmp_path):
    data = jpeg_bytes(gradient(), exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    path = tmp_path / "odd_exif.jpeg"
    path.write_bytes(data)
    assert load_image(path, S).shape == (1, S, S)


# ----------------------------------------------------------------------------- the law: tensor or ImageError


def check_contract(path: Path, size: int) -> None:
    try:
        out = load_image(path, size)
    except ImageError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(display_path(path))
        return
    assert isinstance(out, torch.Tensor) and out.dtype == torch.uint8 and out.shape == (1, size, size)


MODES = {  # mode -> formats Pillow can write it as
    "1": ["PNG", "BMP", "TIFF"],
    "L": ["PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP"],
    "P": ["PNG", "GIF", "BMP", "TIFF"],
    "RGB": ["PNG", "JPEG", "BMP", "TIFF", "WEBP"],
    "RGBA": ["PNG", "TIFF", "WEBP"],
    "LA": ["PNG", "TIFF"],
    "CMYK": ["JPEG", "TIFF"],
    "I;16": ["PNG", "TIFF"],
    "I": ["TIFF"],
    "F": ["TIFF"],
}


@st.composite
def valid_images(draw) -> bytes:
    mode = draw(st.sampled_from(sorted(MODES)))
    fmt = draw(st.sampled_from(MODES[mode]))
    w, h = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    img = Image.frombytes(
        mode, (w, h), rng.integers(0, 256, len(Image.new(mode, (w, h)).tobytes()), dtype=np.uint8).tobytes()
    )
    if mode == "F":  # random bytes make NaNs and infinities too: a float TIFF may hold them
        img = Image.fromarray(rng.normal(size=(h, w)).astype(np.float32) * draw(st.sampled_from([1.0, np.inf, np.nan])))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@given(data=st.binary(max_size=512), size=st.sampled_from([16, 33]))
def test_random_bytes_give_a_tensor_or_an_image_error(tmp_path, data, size):
    path = tmp_path / "random.jpeg"
    path.write_bytes(data)
    check_contract(path, size)


@given(data=valid_images(), size=st.sampled_from([16, 33]))
def test_random_valid_images_of_any_mode_decode_to_the_promised_shape(tmp_path, data, size):
    path = tmp_path / "valid.img"
    path.write_bytes(data)
    out = load_image(path, size)
    assert out.dtype == torch.uint8 and out.shape == (1, size, size)


@given(
    data=valid_images(),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
)
def test_damaged_images_give_a_tensor_or_an_image_error(tmp_path, data, cut, flips):
    damaged = bytearray(data[: max(1, int(len(data) * cut))] if cut < 0.95 else data)
    for where, value in flips:
        damaged[min(int(where * len(damaged)), len(damaged) - 1)] = value
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(damaged))
    check_contract(path, 24)
