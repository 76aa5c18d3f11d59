import { describe, expect, it } from "vitest";

import { fileNameKey, MAX_FILE_NAME_BYTES, safeFileName, splitExtension, uniqueFileName, uniqueFileNameProbes } from "../../src/support/safe-filename.js";

const bytes = (text: string): number => Buffer.byteLength(text, "utf8");

/** What every result must satisfy, whatever the input. */
function expectSafe(name: string): void {
  expect(name).not.toBe("");
  expect(name).not.toMatch(/[/\\<>:"|?*]/);
  expect(name).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
  expect(name).not.toMatch(/^[\s.]/u);
  expect(name).not.toMatch(/[\s.]$/u);
  expect(name).not.toMatch(/^(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\s*\..*)?$/i);
  expect(name).toBe(name.normalize("NFC"));
  // well-formed: survives the trip through UTF-8 unchanged (no lone surrogates)
  expect(Buffer.from(name, "utf8").toString("utf8")).toBe(name);
  expect(bytes(name)).toBeLessThanOrEqual(MAX_FILE_NAME_BYTES);
}

describe("safeFileName", () => {
  it.each([
    ["../../etc/passwd", "passwd"],
    ["..\\..\\evil.bat", "evil.bat"],
    ["/absolute/path/report.pdf", "report.pdf"],
    ["C:\\Users\\victim\\Desktop\\invoice.pdf", "invoice.pdf"],
    ["mixed/..\\..//x.txt", "x.txt"],
    ["CON.txt", "_CON.txt"],
    ["con", "_con"],
    ["Nul.tar.gz", "_Nul.tar.gz"],
    ["COM1", "_COM1"],
    ["lpt9.doc", "_lpt9.doc"],
    ["AUX .txt", "_AUX.txt"],
    ["COM10.txt", "COM10.txt"],
    ["CONTRACT.pdf", "CONTRACT.pdf"],
    ["a\u0000b", "ab"],
    ["\u202Egnp.exe", "gnp.exe"],
    ["invoice\u202E\u2066fdp.exe", "invoicefdp.exe"],
    ["tab\there\r\nnewline.txt", "tab here newline.txt"],
    ["del\u007fc1\u0085\u009f.txt", "delc1.txt"],
    ['what<is>this:"file"|?*.txt', "what_is_this__file____.txt"],
    [".bashrc", "bashrc"],
    ["...hidden.txt", "hidden.txt"],
    ["  . spaced.txt", "spaced.txt"],
    ["trailing.txt. . ", "trailing.txt"],
    ["rapport final.pdf", "rapport final.pdf"],
    ["Eelanalüüsi päring.jpg", "Eelanalüüsi päring.jpg"],
    ["かきくけこ.txt", "かきくけこ.txt"],
  ])("%j -> %j", (input, expected) => {
    const result = safeFileName(input, "fallback.bin");
    expect(result).toBe(expected);
    expectSafe(result);
  });

  it.each([[""], ["."], [".."], ["...."], ["../"], ["..\\"], ["/"], ["\u0000\u0001"], ["\u202E"], [" . . "]])(
    "%j has nothing left, so the fallback is used",
    (input) => {
      expect(safeFileName(input, "attachment-3.pdf")).toBe("attachment-3.pdf");
    },
  );

  it("uses the fallback for an absent name, and sanitises the fallback too", () => {
    expect(safeFileName(undefined, "attachment-1.txt")).toBe("attachment-1.txt");
    expect(safeFileName(undefined, "../x/attachment")).toBe("attachment");
    expect(safeFileName("..", "..")).toBe("file");
  });

  it("normalises to NFC", () => {
    const decomposed = "cafe\u0301.txt"; // e + combining acute
    const result = safeFileName(decomposed, "x");
    expect(result).toBe("caf\u00e9.txt");
    // a control character between base and mark must not leave the pair decomposed
    expect(safeFileName("cafe\u0000\u0301.txt", "x")).toBe("caf\u00e9.txt");
  });

  it("replaces lone surrogates rather than letting them become U+FFFD on disk silently", () => {
    const result = safeFileName("bad\ud800name.txt", "x");
    expect(result).toBe("bad\ufffdname.txt");
    expect(Buffer.from(result, "utf8").toString("utf8")).toBe(result);
  });

  it("caps a 300-character name at 200 bytes and keeps the extension", () => {
    const result = safeFileName(`${"a".repeat(300)}.pdf`, "x");
    expect(bytes(result)).toBe(MAX_FILE_NAME_BYTES);
    expect(result.endsWith(".pdf")).toBe(true);
    expect(result.startsWith("aaaa")).toBe(true);
  });

  it("caps multi-byte names without splitting a character", () => {
    const accented = safeFileName(`${"é".repeat(300)}.txt`, "x");
    expect(bytes(accented)).toBeLessThanOrEqual(MAX_FILE_NAME_BYTES);
    expect(accented).toBe(`${"é".repeat(98)}.txt`);

    const emoji = safeFileName(`${"👍🏽".repeat(100)}.png`, "x");
    expect(bytes(emoji)).toBeLessThanOrEqual(MAX_FILE_NAME_BYTES);
    expect(emoji.endsWith(".png")).toBe(true);
    // every thumbs-up keeps its skin tone: graphemes are never split
    expect(emoji.slice(0, -4)).toMatch(/^(?:👍🏽)+$/u);
    expectSafe(emoji);
  });

  it("does not treat an absurdly long tail after the last dot as an extension", () => {
    const result = safeFileName(`x.${"b".repeat(300)}`, "y");
    expect(bytes(result)).toBe(MAX_FILE_NAME_BYTES);
    expect(result.startsWith("x.bbb")).toBe(true);
  });

  it("trims trailing dots that truncation exposes", () => {
    const result = safeFileName(`${"a".repeat(199)}.${"b".repeat(40)}`, "y");
    expectSafe(result);
    expect(result).toBe("a".repeat(199));
  });

  it("is idempotent, so a handler may sanitise again what the parser sanitised", () => {
    for (const input of ["CON.txt", `${"é".repeat(300)}.txt`, "a (2).txt", "..\\..\\evil.bat", "\u202Egnp.exe", "x. .y"]) {
      const once = safeFileName(input, "f");
      expect(safeFileName(once, "f")).toBe(once);
    }
  });

  it("keeps every invariant on random hostile input", () => {
    // A small deterministic PRNG, so a failure reproduces.
    let seed = 0x2545f491;
    const next = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 0x1_0000_0000;
    };
    const alphabet = [...'./\\:*?"<>| \t\u0000\u0001\u001f\u007f\u0085\u009fabcCONPRNAUXLPT1é\u0301\u202a\u202e\u2066\u2069\ufeffü😀\ud800'];
    for (let i = 0; i < 3000; i++) {
      const length = Math.floor(next() * (i % 10 === 0 ? 400 : 20));
      let input = "";
      for (let j = 0; j < length; j++) input += alphabet[Math.floor(next() * alphabet.length)];
      const result = safeFileName(input, "fallback");
      expectSafe(result);
      expect(safeFileName(result, "fallback")).toBe(result);
    }
  });
});

describe("splitExtension", () => {
  it.each([
    ["report.pdf", ["report", ".pdf"]],
    ["archive.tar.gz", ["archive.tar", ".gz"]],
    ["README", ["README", ""]],
    ["trailing.", ["trailing.", ""]],
  ])("%j", (input, expected) => {
    expect(splitExtension(input)).toEqual(expected);
  });
});

describe("uniqueFileName", () => {
  it("numbers repeats before the extension, ignoring case", () => {
    const taken = new Set<string>();
    expect(uniqueFileName("a.txt", taken)).toBe("a.txt");
    expect(uniqueFileName("a.txt", taken)).toBe("a (2).txt");
    expect(uniqueFileName("A.TXT", taken)).toBe("A (3).TXT");
    expect(uniqueFileName("README", taken)).toBe("README");
    expect(uniqueFileName("readme", taken)).toBe("readme (2)");
  });

  it("skips a suffixed name the sender already used", () => {
    const taken = new Set<string>();
    expect(uniqueFileName("a (2).txt", taken)).toBe("a (2).txt");
    expect(uniqueFileName("a.txt", taken)).toBe("a.txt");
    expect(uniqueFileName("a.txt", taken)).toBe("a (3).txt");
  });

  it("treats NFC and NFD spellings as the same name", () => {
    const taken = new Set<string>();
    expect(uniqueFileName("caf\u00e9.txt", taken)).toBe("caf\u00e9.txt");
    expect(uniqueFileName("cafe\u0301.txt", taken)).toBe("cafe\u0301 (2).txt");
  });

  it("stays within the length limit when it adds a suffix", () => {
    const taken = new Set<string>();
    const long = safeFileName(`${"z".repeat(300)}.docx`, "x");
    uniqueFileName(long, taken);
    const second = uniqueFileName(long, taken);
    expect(second).not.toBe(long);
    expect(second.endsWith(" (2).docx")).toBe(true);
    expect(bytes(second)).toBeLessThanOrEqual(MAX_FILE_NAME_BYTES);
  });
});

describe("names that hide what they are (issue 13)", () => {
  it.each([
    ["invoice.pdf" + " ".repeat(60) + ".exe", "invoice.pdf.exe"],
    ["invoice.pdf\u00a0\u2003\u3000 .exe", "invoice.pdf.exe"],
    ["invoice.pdf . . .exe", "invoice.pdf.exe"],
    ["report .  pdf", "report.pdf"],
    ["in\u200bvoice\u200c\u200d\u2060.pdf", "invoice.pdf"],
    ["\ufeffreport\u00ad\u034f.pdf\ufe0f", "report.pdf"],
    ["photo\u{e0041}\u{e0100}\u3164\u115f.png", "photo.png"],
    ["pay\u2062ment\u180e.docx", "payment.docx"],
    ["two  \t  spaces.txt", "two spaces.txt"],
    ["\u200b\u200b", "fallback.bin"],
  ])("%j -> %j", (input, expected) => {
    const result = safeFileName(input, "fallback.bin");
    expect(result).toBe(expected);
    expect(safeFileName(result, "x")).toBe(result);
  });

  it("compares names as Windows and macOS do: case folded, canonical spellings equal", () => {
    expect(fileNameKey("STRASSE.txt")).toBe(fileNameKey("straße.txt"));
    expect(fileNameKey("ΟΔΟΣ.txt")).toBe(fileNameKey("οδος.txt"));
    expect(fileNameKey("οδοσ.txt")).toBe(fileNameKey("οδος.txt"));
    expect(fileNameKey("Cafe\u0301.TXT")).toBe(fileNameKey("caf\u00e9.txt"));
    const taken = new Set<string>();
    expect(uniqueFileName("Straße.pdf", taken)).toBe("Straße.pdf");
    expect(uniqueFileName("STRASSE.PDF", taken)).toBe("STRASSE (2).PDF");
  });

  it("numbers thousands of repeats of one name in linear work (n, 4n, 16n)", () => {
    const probes = [500, 2000, 8000].map((count) => {
      const taken = new Set<string>();
      for (let i = 0; i < count; i++) uniqueFileName("image.png", taken);
      expect(taken.size).toBe(count);
      return uniqueFileNameProbes(taken) / count;
    });
    // One probe per name: the next number is remembered (before: count / 2 probes per name on average).
    expect(probes).toEqual([1, 1, 1]);
  });

  it("stays linear when the sender also used the numbered names, and with long names that share a prefix", () => {
    const taken = new Set<string>();
    const count = 4000;
    for (let i = 2; i < count; i++) uniqueFileName(`a (${i}).txt`, taken);
    for (let i = 0; i < count; i++) uniqueFileName("a.txt", taken);
    const long = (i: number) => safeFileName(`${"z".repeat(250)}${i}.docx`, "x");
    for (let i = 0; i < count; i++) uniqueFileName(long(i % 50), taken);
    expect(taken.size).toBe(3 * count - 2);
    expect(uniqueFileNameProbes(taken)).toBeLessThanOrEqual(2 * (3 * count));
    for (const name of taken) expect(Buffer.byteLength(name)).toBeLessThanOrEqual(MAX_FILE_NAME_BYTES);
  });
});
