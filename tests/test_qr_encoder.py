"""Our own QR Code encoder (bot/webapp/static/qr_encoder.js), run with Node.js as the Mini App's
page runs it, checked against independent readers and writers.

Every symbol is drawn with Pillow (quiet zone of 4, 3 px per module) and read back by zxing-cpp:
the text read must be the text encoded, at level M. Its version must be the smallest that holds
the text's UTF-8 bytes at level M, as segno counts it. The texts: short ones, the rotating entry
codes of storage/entry_codes.py at the lengths they really have, UTF-8 text, and for each
version the longest text that fits it and one byte more. Every one of the eight masks reads
back, every module of each is where the standard puts it (segno's drawing steps fed the
standard's data codewords), and the mask chosen has the lowest penalty of ISO/IEC 18004's four
rules (a reference scorer here, whose rules 1, 2 and 4 agree with segno's).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import segno
import zxingcpp
from PIL import Image
from segno import consts
from segno import encoder as segno_steps
from segno.encoder import mask_scores

from storage import entry_codes

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None, reason="Node.js is not installed: the encoder under test is JavaScript (node "
                         "v20 is on every machine of this kind; .ci/run installs it if missing)")

ENCODER = Path(__file__).resolve().parent.parent / "bot" / "webapp" / "static" / "qr_encoder.js"
MODULE_PX, QUIET_ZONE = 3, 4

# Reads [[text, mask or null], ...] on stdin and writes, for each, the symbol's version, mask and
# rows of 0/1 characters, or the error it threw.
DRIVER = """
require(process.env.QR_ENCODER);
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = cases.map(([text, mask]) => {
  try {
    const code = QrEncoder.encode(text, mask === null ? undefined : mask);
    const rows = [];
    for (let r = 0; r < code.size; r++) {
      let row = "";
      for (let c = 0; c < code.size; c++) row += code.isDark(r, c) ? "1" : "0";
      rows.push(row);
    }
    return { version: code.version, size: code.size, mask: code.mask, rows: rows };
  } catch (error) {
    return { error: error.name + ": " + error.message };
  }
});
process.stdout.write(JSON.stringify(out));
"""


def run_encoder(cases: list[tuple[str, int | None]]) -> list[dict]:
    done = subprocess.run([NODE, "-e", DRIVER], input=json.dumps(cases), capture_output=True,
                          text=True, check=True, timeout=120,
                          env={**os.environ, "QR_ENCODER": str(ENCODER)})
    return json.loads(done.stdout)


def entry_code(ref: str, step: int) -> str:
    """A real rotating code, as the holder's page builds it."""
    ticket = entry_codes.sign_ticket(entry_codes.new_key(), "fest-sat", ref, f"BC-{ref}", 30)
    return ticket.code_at(step)


def byte_capacity(version: int) -> int:
    """The most bytes a version holds in byte mode at level M (segno's bit capacity)."""
    count_bits = 8 if version <= 9 else 16
    return (consts.SYMBOL_CAPACITY[version][consts.ERROR_LEVEL_M] - 4 - count_bits) // 8


def ascii_text(length: int, seed: int) -> str:
    pick = random.Random(seed)
    return "".join(pick.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-_")
                   for _ in range(length))


SHORT = ["a", "0", "Hello, gate 3!", "https://example.org/t/ABC"]
ENTRY = [entry_code("A1", 1), entry_code("ORD-2026-000123-7", 59_000_000),
         entry_code("X" * 40, 7), entry_code("~" * 64, 999_999_999_999)]
LONGEST_ENTRY = 213  # a 64-character ticket ref and a 12-digit step
UTF8 = ["Grüße aus Köln", "Билет №42, ряд 7", "入場券 — 東京ドーム", "🎫🎟️ entrée 🎶",
        "ñ" * 60, "€" * 100]
BOUNDARIES = [ascii_text(byte_capacity(v) + extra, v * 2 + extra)
              for v in range(1, 41) for extra in (0, 1) if (v, extra) != (40, 1)]
TEXTS = SHORT + ENTRY + UTF8 + BOUNDARIES
MASKED = SHORT + ENTRY + UTF8 + BOUNDARIES[0:30:3]


@pytest.fixture(scope="module")
def encoded() -> dict[str, dict]:
    return dict(zip(TEXTS, run_encoder([(text, None) for text in TEXTS]), strict=True))


@pytest.fixture(scope="module")
def forced_masks() -> dict[str, list[dict]]:
    results = run_encoder([(text, mask) for text in MASKED for mask in range(8)])
    return {text: results[i * 8:(i + 1) * 8] for i, text in enumerate(MASKED)}


def picture(rows: list[str]) -> Image.Image:
    """The symbol black on white, with its quiet zone, MODULE_PX pixels a module."""
    size = len(rows)
    modules = Image.frombytes("L", (size, size),
                              bytes(0 if dark == "1" else 255 for row in rows for dark in row))
    framed = Image.new("L", (size + 2 * QUIET_ZONE,) * 2, 255)
    framed.paste(modules, (QUIET_ZONE, QUIET_ZONE))
    return framed.resize((framed.width * MODULE_PX,) * 2, Image.Resampling.NEAREST)


def read_back(rows: list[str]) -> zxingcpp.Result:
    found = zxingcpp.read_barcodes(picture(rows), formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, "zxing-cpp found no QR code"
    return found[0]


def case_id(text: str) -> str:
    return f"{len(text.encode())}B-{text[:12]}"


@pytest.mark.parametrize("text", TEXTS, ids=case_id)
def test_each_symbol_reads_back_as_its_text_at_level_m(encoded, text):
    symbol = encoded[text]
    result = read_back(symbol["rows"])
    assert result.text == text
    assert result.ec_level == "M"
    assert len(symbol["rows"]) == symbol["size"] == 17 + 4 * symbol["version"]


@pytest.mark.parametrize("text", TEXTS, ids=case_id)
def test_the_version_is_the_smallest_that_holds_the_text_at_level_m(encoded, text):
    length = len(text.encode())
    smallest = next(v for v in range(1, 41) if byte_capacity(v) >= length)
    assert encoded[text]["version"] == smallest


@pytest.mark.parametrize("text", SHORT + ENTRY + UTF8, ids=case_id)
def test_the_symbol_has_the_size_segno_gives_the_text(encoded, text):
    expected = segno.make_qr(text, error="m", mode="byte", encoding="utf-8", boost_error=False)
    assert (encoded[text]["version"], encoded[text]["size"]) == (
        expected.version, expected.symbol_size(border=0)[0])


def test_the_boundary_texts_step_up_a_version_one_byte_past_capacity(encoded):
    versions = [encoded[text]["version"] for text in BOUNDARIES]
    assert versions[:4] == [1, 2, 2, 3]  # v1 full, one byte more is v2, ...
    assert versions[-1] == 40


def test_the_entry_codes_are_as_long_as_the_real_ones(encoded):
    lengths = [len(code) for code in ENTRY]
    assert all(entry_codes.parse(code) is not None for code in ENTRY)
    assert min(lengths) < 150 and max(lengths) == LONGEST_ENTRY
    assert [encoded[code]["version"] for code in ENTRY] == [8, 9, 9, 10]


@pytest.mark.parametrize("text", MASKED, ids=case_id)
def test_every_mask_reads_back(forced_masks, text):
    symbols = forced_masks[text]
    assert [symbol["mask"] for symbol in symbols] == list(range(8))
    assert len({"".join(symbol["rows"]) for symbol in symbols}) == 8
    for symbol in symbols:
        assert read_back(symbol["rows"]).text == text


@pytest.mark.parametrize("text", MASKED, ids=case_id)
def test_the_chosen_mask_has_the_lowest_penalty(encoded, forced_masks, text):
    scores = [sum(penalty(symbol["rows"])) for symbol in forced_masks[text]]
    assert encoded[text]["mask"] == scores.index(min(scores))
    assert encoded[text]["rows"] == forced_masks[text][encoded[text]["mask"]]["rows"]


def test_the_reference_penalty_agrees_with_segno_on_rules_1_2_and_4(forced_masks):
    for symbols in forced_masks.values():
        for symbol in symbols:
            rows = symbol["rows"]
            ours = penalty(rows)
            theirs = mask_scores([bytearray(int(dark) for dark in row) for row in rows],
                                 len(rows), len(rows))
            assert (ours[0], ours[1], ours[3]) == (theirs[0], theirs[1], theirs[3])
            assert ours[2] >= theirs[2]  # segno skips a pattern sharing a module with the last


@pytest.mark.parametrize("text", MASKED, ids=case_id)
def test_every_module_is_where_the_standard_puts_it(forced_masks, text):
    for symbol in forced_masks[text]:
        assert symbol["rows"] == reference_rows(text, symbol["version"], symbol["mask"])


def test_a_text_too_long_for_version_40_is_refused():
    too_long, longest = run_encoder([("x" * (byte_capacity(40) + 1), None),
                                     ("é" * (byte_capacity(40) // 2), None)])
    assert too_long["error"].startswith("RangeError: text too long")
    assert longest["version"] == 40


def test_the_page_loads_our_encoder_and_no_copied_one():
    static = ENCODER.parent
    assert not (static / "qrcode.js").exists()
    assert '<script src="static/qr_encoder.js">' in (static / "index.html").read_text()
    assert "QrEncoder.encode(" in (static / "app.js").read_text()


def reference_rows(text: str, version: int, mask: int) -> list[str]:
    """The symbol drawn by segno's steps (Reed-Solomon, interleaving, placement, mask, format and
    version information) from the data codewords as ISO/IEC 18004 section 7.4 writes them: mode,
    count, bytes, a terminator of up to four zero bits, zero bits to the byte, then 0xEC and 0x11
    in turn. (segno's own data stream adds one more zero byte after a terminator that ends on a
    byte boundary, so its symbols differ from the standard's listing there.)"""
    data = text.encode()
    capacity = consts.SYMBOL_CAPACITY[version][consts.ERROR_LEVEL_M]
    stream = segno_steps.Buffer()
    stream.append_bits(0b0100, 4)
    stream.append_bits(len(data), 8 if version <= 9 else 16)
    for byte in data:
        stream.append_bits(byte, 8)
    stream.extend([0] * min(4, capacity - len(stream)))
    stream.extend([0] * (-len(stream) % 8))
    for i in range((capacity - len(stream)) // 8):
        stream.append_bits((0xEC, 0x11)[i % 2], 8)
    message = segno_steps.make_final_message(version, consts.ERROR_LEVEL_M, stream)
    size = 17 + 4 * version
    matrix = segno_steps.make_matrix(size, size)
    segno_steps.add_finder_patterns(matrix, size, size)
    segno_steps.add_alignment_patterns(matrix, size, size)
    segno_steps.add_codewords(matrix, message, version)
    _, matrix = segno_steps.find_and_apply_best_mask(matrix, size, size, mask)
    segno_steps.add_format_info(matrix, version, consts.ERROR_LEVEL_M, mask)
    segno_steps.add_version_info(matrix, version)
    return ["".join("1" if module else "0" for module in row) for row in matrix]


def penalty(rows: list[str]) -> tuple[int, int, int, int]:
    """ISO/IEC 18004 section 7.8.3's four penalty rules on a finished symbol: runs of five or
    more, 2x2 blocks, finder-like 1:1:3:1:1 patterns beside four light modules (the quiet zone
    counts as light), and the share of dark modules away from half."""
    size = len(rows)
    lines = rows + ["".join(column) for column in zip(*rows, strict=True)]
    runs = sum(len(run.group()) - 2 for line in lines for run in re.finditer(r"0{5,}|1{5,}", line))
    blocks = 3 * sum(rows[r][c] == rows[r][c + 1] == rows[r + 1][c] == rows[r + 1][c + 1]
                     for r in range(size - 1) for c in range(size - 1))
    finder_like = 0
    for line in lines:
        framed = "0000" + line + "0000"
        for found in re.finditer(r"(?=1011101)", framed):
            at = found.start()
            if framed[at - 4:at] == "0000" or framed[at + 7:at + 11] == "0000":
                finder_like += 40
    dark = sum(row.count("1") for row in rows)
    balance = 10 * int(abs(dark * 100 / size**2 - 50) / 5)
    return runs, blocks, finder_like, balance
