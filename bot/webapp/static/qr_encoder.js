// Ticketbot's own QR Code encoder, written here from the structure of ISO/IEC 18004 (no code
// copied from elsewhere, nothing downloaded at run time, no build step). It draws the Mini App's
// live entry code: byte mode (the text's UTF-8 bytes), error correction level M, the smallest
// of versions 1-40 that holds the text, Reed-Solomon codewords over GF(256) in the standard's
// block structure, the data interleaved, the function patterns, format and version
// information (BCH codes), and the mask with the lowest penalty of the standard's four rules.
//
//   var code = QrEncoder.encode("TB1....");  // throws RangeError if too long for version 40
//   code.size, code.version, code.mask, code.isDark(row, col)
(function (root) {
  "use strict";

  // Level M, per version 1-40: EC codewords in each block, and the number of blocks (ISO/IEC
  // 18004 table 9). The blocks share the version's codewords; some blocks are one longer.
  var EC_PER_BLOCK_M = [
    10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26,
    26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28];
  var BLOCKS_M = [
    1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16,
    17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49];
  var LEVEL_M_BITS = 0;         // the level's two format bits: L=01, M=00, Q=11, H=10
  var FORMAT_GENERATOR = 0x537; // BCH(15,5): x^10 + x^8 + x^5 + x^4 + x^2 + x + 1
  var FORMAT_XOR = 0x5412;      // so that no format word is all light
  var VERSION_GENERATOR = 0x1f25; // BCH(18,6): x^12 + x^11 + x^10 + x^9 + x^8 + x^5 + x^2 + 1
  var PAD_BYTES = [0xec, 0x11];

  // ---- GF(256) with the field polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11d), generator 2 ----

  var EXP = new Uint8Array(512), LOG = new Uint8Array(256);
  (function buildField() {
    var value = 1;
    for (var power = 0; power < 255; power++) {
      EXP[power] = value;
      LOG[value] = power;
      value <<= 1;
      if (value & 0x100) value ^= 0x11d;
    }
    for (power = 255; power < 512; power++) EXP[power] = EXP[power - 255];
  })();

  function gfMultiply(a, b) {
    return a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]];
  }

  // Coefficients of (x - a^0)(x - a^1)...(x - a^(degree-1)), highest power first.
  function generatorPolynomial(degree) {
    var poly = [1];
    for (var i = 0; i < degree; i++) {
      var next = new Array(poly.length + 1).fill(0);
      for (var j = 0; j < poly.length; j++) {
        next[j] ^= poly[j];
        next[j + 1] ^= gfMultiply(poly[j], EXP[i]);
      }
      poly = next;
    }
    return poly;
  }

  // The remainder of data(x) * x^degree divided by the generator: the block's EC codewords.
  function errorCorrection(data, generator) {
    var degree = generator.length - 1;
    var remainder = new Array(degree).fill(0);
    data.forEach(function (byte) {
      var factor = byte ^ remainder.shift();
      remainder.push(0);
      for (var i = 0; i < degree; i++) remainder[i] ^= gfMultiply(generator[i + 1], factor);
    });
    return remainder;
  }

  // ---- capacity of a version ----

  function symbolSize(version) { return 17 + 4 * version; }

  // Centres of the alignment patterns on one axis: 6, then evenly spaced (an even step) up to
  // size - 7; version 32's step is the standard's one exception to the rounding.
  function alignmentCentres(version) {
    if (version === 1) return [];
    var count = Math.floor(version / 7) + 2;
    var last = symbolSize(version) - 7;
    var step = version === 32 ? 26 : Math.ceil((last - 6) / (count - 1) / 2) * 2;
    var centres = [6];
    for (var i = count - 2; i >= 0; i--) centres.push(last - i * step);
    return centres;
  }

  // Modules left for codewords once the function patterns and format/version areas are drawn.
  function dataModules(version) {
    var size = symbolSize(version);
    var modules = size * size - 3 * 64 - 2 * (size - 16) - 31; // finders+separators, timing,
    var aligns = alignmentCentres(version).length;               // format (30) and dark module
    if (aligns > 0) modules -= 25 * (aligns * aligns - 3) - 10 * (aligns - 2);
    if (version >= 7) modules -= 36;
    return modules;
  }

  function totalCodewords(version) { return Math.floor(dataModules(version) / 8); }

  function dataCodewords(version) {
    return totalCodewords(version) - EC_PER_BLOCK_M[version - 1] * BLOCKS_M[version - 1];
  }

  function countBits(version) { return version <= 9 ? 8 : 16; }

  function smallestVersion(byteCount) {
    for (var version = 1; version <= 40; version++) {
      if (4 + countBits(version) + 8 * byteCount <= 8 * dataCodewords(version)) return version;
    }
    throw new RangeError("text too long for a QR code at level M: " + byteCount + " bytes");
  }

  // ---- codewords: the bit stream, split in blocks, EC added, interleaved ----

  function dataStream(bytes, version) {
    var bits = [];
    function put(value, length) {
      for (var i = length - 1; i >= 0; i--) bits.push((value >>> i) & 1);
    }
    put(0x4, 4); // byte mode
    put(bytes.length, countBits(version));
    bytes.forEach(function (byte) { put(byte, 8); });
    var capacity = 8 * dataCodewords(version);
    put(0, Math.min(4, capacity - bits.length)); // terminator
    put(0, (8 - bits.length % 8) % 8);
    var codewords = [];
    for (var i = 0; i < bits.length; i += 8) {
      var byte = 0;
      for (var j = 0; j < 8; j++) byte = (byte << 1) | bits[i + j];
      codewords.push(byte);
    }
    for (var pad = 0; codewords.length < capacity / 8; pad++) {
      codewords.push(PAD_BYTES[pad % 2]);
    }
    return codewords;
  }

  function interleaved(data, version) {
    var blockCount = BLOCKS_M[version - 1], ecLength = EC_PER_BLOCK_M[version - 1];
    var longBlocks = totalCodewords(version) % blockCount;
    var shortData = Math.floor(data.length / blockCount);
    var generator = generatorPolynomial(ecLength);
    var blocks = [], start = 0;
    for (var b = 0; b < blockCount; b++) {
      var length = shortData + (b >= blockCount - longBlocks ? 1 : 0);
      var part = data.slice(start, start + length);
      start += length;
      blocks.push({ data: part, ec: errorCorrection(part, generator) });
    }
    var result = [];
    for (var i = 0; i <= shortData; i++) {
      blocks.forEach(function (block) { if (i < block.data.length) result.push(block.data[i]); });
    }
    for (i = 0; i < ecLength; i++) {
      blocks.forEach(function (block) { result.push(block.ec[i]); });
    }
    return result;
  }

  // ---- the matrix ----

  function Matrix(version) {
    this.version = version;
    this.size = symbolSize(version);
    this.dark = new Uint8Array(this.size * this.size);
    this.reserved = new Uint8Array(this.size * this.size); // function patterns and info areas
  }

  Matrix.prototype.set = function (row, col, dark) {
    this.dark[row * this.size + col] = dark ? 1 : 0;
    this.reserved[row * this.size + col] = 1;
  };

  Matrix.prototype.isReserved = function (row, col) {
    return this.reserved[row * this.size + col] === 1;
  };

  // A 7x7 finder at (top, left), with its light separator wherever it lies inside the symbol.
  function drawFinder(matrix, top, left) {
    for (var dr = -1; dr <= 7; dr++) {
      for (var dc = -1; dc <= 7; dc++) {
        var row = top + dr, col = left + dc;
        if (row < 0 || col < 0 || row >= matrix.size || col >= matrix.size) continue;
        var ring = Math.max(Math.abs(dr - 3), Math.abs(dc - 3));
        matrix.set(row, col, ring !== 2 && ring !== 4);
      }
    }
  }

  function drawAlignment(matrix, row, col) {
    for (var dr = -2; dr <= 2; dr++) {
      for (var dc = -2; dc <= 2; dc++) {
        matrix.set(row + dr, col + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1);
      }
    }
  }

  function drawFunctionPatterns(matrix) {
    var size = matrix.size;
    for (var i = 0; i < size; i++) {
      matrix.set(6, i, i % 2 === 0);
      matrix.set(i, 6, i % 2 === 0);
    }
    drawFinder(matrix, 0, 0);
    drawFinder(matrix, 0, size - 7);
    drawFinder(matrix, size - 7, 0);
    var centres = alignmentCentres(matrix.version), last = centres.length - 1;
    centres.forEach(function (row, r) {
      centres.forEach(function (col, c) {
        var onFinder = (r === 0 && c === 0) || (r === 0 && c === last) ||
                       (r === last && c === 0);
        if (!onFinder) drawAlignment(matrix, row, col);
      });
    });
    drawFormat(matrix, 0); // reserves the areas; drawn again once the mask is known
    drawVersion(matrix);
  }

  // The BCH remainder of value * x^(degree of generator) divided by the generator.
  function bchRemainder(value, generator) {
    var degree = 31 - Math.clz32(generator);
    var remainder = value << degree;
    for (var bit = 31 - Math.clz32(remainder); bit >= degree; bit--) {
      if ((remainder >>> bit) & 1) remainder ^= generator << (bit - degree);
    }
    return remainder;
  }

  // Format information: level and mask, 15 bits; bit 14 (the most significant) is drawn at
  // (8, 0) beside the top-left finder and at (size-1, 8) below it on the left.
  function drawFormat(matrix, mask) {
    var data = (LEVEL_M_BITS << 3) | mask;
    var word = ((data << 10) | bchRemainder(data, FORMAT_GENERATOR)) ^ FORMAT_XOR;
    var size = matrix.size;
    for (var i = 0; i < 15; i++) {
      var dark = (word >>> (14 - i)) & 1;
      // First copy: along row 8 left to right (skipping the timing column), then up column 8.
      var firstCol = i < 6 ? i : i < 8 ? i + 1 : 8;
      var firstRow = i < 8 ? 8 : i === 8 ? 7 : 14 - i;
      matrix.set(firstRow, firstCol, dark);
      // Second copy: up column 8 from the bottom, then along row 8 to the right edge.
      if (i < 7) matrix.set(size - 1 - i, 8, dark);
      else matrix.set(8, size - 15 + i, dark);
    }
    matrix.set(size - 8, 8, true); // the dark module
  }

  // Version information (versions 7 and up): 6 bits and 12 BCH bits, twice, in 3x6 blocks
  // above the bottom-left finder and left of the top-right one.
  function drawVersion(matrix) {
    if (matrix.version < 7) return;
    var word = (matrix.version << 12) | bchRemainder(matrix.version, VERSION_GENERATOR);
    for (var i = 0; i < 18; i++) {
      var dark = (word >>> i) & 1;
      var near = Math.floor(i / 3), far = matrix.size - 11 + (i % 3);
      matrix.set(far, near, dark);
      matrix.set(near, far, dark);
    }
  }

  // Codeword bits, most significant first, in two-module columns from the bottom-right,
  // upward then downward, stepping over the vertical timing pattern; leftover modules light.
  function placeCodewords(matrix, codewords) {
    var size = matrix.size, bit = 0, total = codewords.length * 8;
    var upward = true;
    for (var right = size - 1; right > 0; right -= 2) {
      if (right === 6) right = 5;
      for (var step = 0; step < size; step++) {
        var row = upward ? size - 1 - step : step;
        for (var side = 0; side < 2; side++) {
          var col = right - side;
          if (matrix.isReserved(row, col)) continue;
          var dark = bit < total && ((codewords[bit >> 3] >>> (7 - (bit & 7))) & 1);
          matrix.dark[row * size + col] = dark ? 1 : 0;
          bit++;
        }
      }
      upward = !upward;
    }
  }

  var MASKS = [
    function (r, c) { return (r + c) % 2 === 0; },
    function (r) { return r % 2 === 0; },
    function (r, c) { return c % 3 === 0; },
    function (r, c) { return (r + c) % 3 === 0; },
    function (r, c) { return (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0; },
    function (r, c) { return (r * c) % 2 + (r * c) % 3 === 0; },
    function (r, c) { return ((r * c) % 2 + (r * c) % 3) % 2 === 0; },
    function (r, c) { return ((r + c) % 2 + (r * c) % 3) % 2 === 0; }
  ];

  // Flips the data modules where the mask's condition holds; applying it twice undoes it.
  function applyMask(matrix, mask) {
    var condition = MASKS[mask], size = matrix.size;
    for (var row = 0; row < size; row++) {
      for (var col = 0; col < size; col++) {
        if (!matrix.isReserved(row, col) && condition(row, col)) {
          matrix.dark[row * size + col] ^= 1;
        }
      }
    }
  }

  // ---- the mask penalty (ISO/IEC 18004 section 7.8.3): the lower, the easier to read ----

  var FINDER_LIKE = [1, 0, 1, 1, 1, 0, 1];

  function lines(matrix) {
    var size = matrix.size, result = [];
    for (var i = 0; i < size; i++) {
      var row = [], col = [];
      for (var j = 0; j < size; j++) {
        row.push(matrix.dark[i * size + j]);
        col.push(matrix.dark[j * size + i]);
      }
      result.push(row, col);
    }
    return result;
  }

  // Rule 1: each run of 5+ same-coloured modules in a row or column scores 3 + (length - 5).
  function runPenalty(line) {
    var score = 0, run = 1;
    for (var i = 1; i <= line.length; i++) {
      if (i < line.length && line[i] === line[i - 1]) { run++; continue; }
      if (run >= 5) score += run - 2;
      run = 1;
    }
    return score;
  }

  // Rule 3: each 1:1:3:1:1 (dark:light:dark:dark:dark:light:dark) pattern preceded or
  // followed by four light modules scores 40; beyond the symbol is the light quiet zone.
  function finderLikePenalty(line) {
    var score = 0;
    for (var start = 0; start + 7 <= line.length; start++) {
      if (FINDER_LIKE.every(function (module, k) { return line[start + k] === module; }) &&
          (lightSpan(line, start - 4) || lightSpan(line, start + 7))) score += 40;
    }
    return score;
  }

  function lightSpan(line, from) {
    for (var i = from; i < from + 4; i++) if (i >= 0 && i < line.length && line[i]) return false;
    return true;
  }

  // Rule 2: each 2x2 block of one colour scores 3.
  function blockPenalty(matrix) {
    var size = matrix.size, dark = matrix.dark, score = 0;
    for (var row = 0; row + 1 < size; row++) {
      for (var col = 0; col + 1 < size; col++) {
        var here = dark[row * size + col];
        if (here === dark[row * size + col + 1] && here === dark[(row + 1) * size + col] &&
            here === dark[(row + 1) * size + col + 1]) score += 3;
      }
    }
    return score;
  }

  // Rule 4: 10 for each full 5% the share of dark modules is away from 50%.
  function balancePenalty(matrix) {
    var dark = 0;
    matrix.dark.forEach(function (module) { dark += module; });
    var percent = (dark * 100) / matrix.dark.length;
    return 10 * Math.floor(Math.abs(percent - 50) / 5);
  }

  function penalty(matrix) {
    var score = blockPenalty(matrix) + balancePenalty(matrix);
    lines(matrix).forEach(function (line) {
      score += runPenalty(line) + finderLikePenalty(line);
    });
    return score;
  }

  // ---- the API ----

  function encodeBytes(bytes, mask) {
    var version = smallestVersion(bytes.length);
    var matrix = new Matrix(version);
    drawFunctionPatterns(matrix);
    placeCodewords(matrix, interleaved(dataStream(bytes, version), version));
    var chosen = mask === undefined ? bestMask(matrix) : mask;
    applyMask(matrix, chosen);
    drawFormat(matrix, chosen);
    return symbol(matrix, chosen);
  }

  // Tries each mask on the placed codewords and keeps the one with the lowest penalty.
  function bestMask(matrix) {
    var best = null;
    for (var mask = 0; mask < 8; mask++) {
      applyMask(matrix, mask);
      drawFormat(matrix, mask);
      var score = penalty(matrix);
      if (best === null || score < best.score) best = { mask: mask, score: score };
      applyMask(matrix, mask);
    }
    return best.mask;
  }

  function symbol(matrix, mask) {
    var size = matrix.size, dark = matrix.dark;
    return {
      version: matrix.version,
      size: size,
      mask: mask,
      isDark: function (row, col) { return dark[row * size + col] === 1; }
    };
  }

  // Encodes text as its UTF-8 bytes; `mask` (0-7) forces a mask instead of the best one.
  function encode(text, mask) {
    return encodeBytes(Array.from(new TextEncoder().encode(text)), mask);
  }

  root.QrEncoder = { encode: encode, encodeBytes: encodeBytes };
})(typeof window !== "undefined" ? window : globalThis);
