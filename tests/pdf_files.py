"""Small text PDFs written byte by byte, so the tests need no PDF writer library.

Latin text is set in Helvetica; Chinese in STSong-Light, one of the standard CJK fonts a
PDF reader knows without embedding (UTF-16 codes, the ``UniGB-UTF16-H`` encoding). Lines
are 14 points apart and paragraphs 24, as in a typeset page.
"""

from __future__ import annotations

import textwrap

_LATIN_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
_CJK_FONT = (
    b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UTF16-H "
    b"/DescendantFonts [<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light "
    b"/CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 4 >> /DW 1000 >>] >>"
)


def make_pdf(pages: list[list[str]], *, title: str = "", chinese: bool = False) -> bytes:
    """A PDF with one page per list of paragraphs (each wrapped into lines), titled ``title``."""
    font = _CJK_FONT if chinese else _LATIN_FONT
    contents = [_page_stream(paragraphs, chinese) for paragraphs in pages]
    page_ids = [4 + 2 * n for n in range(len(pages))]
    objects = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % n for n in page_ids), len(pages)),
        3: font,
    }
    for page_id, stream in zip(page_ids, contents):
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)
    info = ""
    if title:
        info_id = len(objects) + 1
        objects[info_id] = b"<< /Title <%s> >>" % ("\ufeff" + title).encode("utf-16-be").hex().encode()
        info = f" /Info {info_id} 0 R"
    return _file(objects, info)


def _page_stream(paragraphs: list[str], chinese: bool) -> bytes:
    ops, y = ["BT", "/F1 11 Tf"], 760
    for paragraph in paragraphs:
        lines = (
            [paragraph[i:i + 30] for i in range(0, len(paragraph), 30)]
            if chinese else textwrap.wrap(paragraph, 80)
        )
        for line in lines:
            ops.append(f"1 0 0 1 56 {y} Tm {_string(line, chinese)} Tj")
            y -= 14
        y -= 10
    ops.append("ET")
    return "\n".join(ops).encode("latin-1")


def _string(line: str, chinese: bool) -> str:
    if chinese:
        return f"<{line.encode('utf-16-be').hex()}>"
    return "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _file(objects: dict[int, bytes], info: str) -> bytes:
    out, offsets = bytearray(b"%PDF-1.4\n"), {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (number, objects[number])
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in sorted(objects))
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, info.encode(), xref
    )
    return bytes(out)
