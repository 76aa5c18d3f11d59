import { createHash } from "node:crypto";
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";

import { describe, expect, it } from "vitest";

import { ENRICH_FIXTURES, fixture } from "./helpers.js";

/** Every fixture and its sha256 (test/fixtures/enrich/README.md): a line-ending conversion must fail loudly. */
const FIXTURE_SHA256: Record<string, string> = {
  "auto-replies/exchange-oof.eml": "61d5218278602caa9dfbe6758df0a4b26295346a896570a8fef223f958c4fd73",
  "auto-replies/gmail-vacation.eml": "b7844742e2b0a5484c48995cb19eb04903e960ae1729474d8d0a84e87c7ae7b2",
  "chains/apple/1-first.eml": "9c78b9686ab2c68b92ec9ab3ebda5444bf03e10ee4d710a7d4f52795aab882a9",
  "chains/apple/2-reply.eml": "16a683fbec199840ae066ddb857c6842da829c0ee9068d833e97335100761c42",
  "chains/apple/3-reply.eml": "2ae48a074efa53cb1be6e3dcbd2ee75f8e896b31102332769e870f9426e5d68e",
  "chains/gmail/1-first.eml": "381268354a16e64e827a5cbd263593a890ce01280f4b58e2b657770b81a1728b",
  "chains/gmail/2-reply.eml": "f7406f95c6db948e7578579d94555a4027d9baed62644fadd04c3778d131f31f",
  "chains/gmail/3-reply.eml": "c694b8149b528b2087c798e9740872a1aa61c5dbd3692d6a3fb4dab25bd2011c",
  "chains/outlook/1-first.eml": "03ed495ce1aa951d1172ea7cf1e00bf45b62def5f2878629754549664aa34f0c",
  "chains/outlook/2-reply.eml": "63f793642db134fd5b906ec713702327b46158b7e39d8cf606918f7f2e6703f9",
  "chains/outlook/3-reply.eml": "cd8c89926b2cf0833d0fa6301e992adb3c49faeaa7dd8ab78ddbe1188b8c5306",
  "chains/outlook/4-reply-without-references.eml": "b59284a388fc60f34376ab18d4816d7a4e4caf6b76c0999c8e490562ad8801fe",
  "chains/unrelated-same-subject.eml": "55774ecfd63647621ea54de8b7b090012ebef4ea42db7ec6cc7f5e5c9d9fdb5f",
  "corpus/mikel-mail/multi_address_bounce1.eml": "1f9c44225fc19f7f56a516fa9a7f5001f3ec0498ad79f6cc89582303eb86adef",
  "corpus/mimekit/messages/bounce.txt": "df37d751bff5586ee6005ed117a9d59c5129a242e246550795f2d3cb67365ffe",
  "corpus/mimekit/messages/delivery-status-no-blank-line.txt": "c63b56352f18fb58d3eba3370130eed19481b092fee6deb17e5dcc0ad6327ed3",
  "corpus/mimekit/messages/disposition-notification.txt": "482756cfdc0de21ce5c5e898600dad4d93c07bcdbb4220d6ed325b00cb8cae35",
  "corpus/mimekit/tnef/MAPI_ATTACH_DATA_OBJ.tnef": "4fd97f456648c8c5212bba0405da722be48b33f415d59a2455ce1c40826f39cd",
  "corpus/mimekit/tnef/data-before-name.tnef": "856c5c806ec6c91162850c523e3bcbb095f51615c846be22ec3a3ff3d0592d77",
  "corpus/mimekit/tnef/garbage-at-end.tnef": "b9ed22cb9635d979f9e95eb93e8deb490d5f8e855438fc2eacfc4d89a9dfc311",
  "corpus/mimekit/tnef/long-filename.tnef": "c2409f5d39f6e119904b4a2277acd745d621966efcf962ceb44a78c4c55eb5e0",
  "corpus/mimekit/tnef/panic.tnef": "a1298fa6420a15f6a2f8f7353637daf2e15bd4a53245985b3cca275581ca67be",
  "corpus/mimekit/tnef/two-files.tnef": "490ce41d9becd209b48224804cff53566de4f7bea647d9a882e683427c993077",
  "corpus/mimekit/tnef/unicode-mapi-attr-name.tnef": "664b47ff71630f5caa95dfeac663e47027382614604b9fdeb0b80b79c8f93955",
  "corpus/postal-mime/calendar-event.eml": "9da5d31bd3aedfcab68797a0416713f6a45e81aabc0d76b735393874fe38b1a7",
  "corpus/zbateson/m4006.txt": "3e2f901fade4a64dfac646772be45188819f136c5c915918d1121b228d18e7de",
};

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [relative(ENRICH_FIXTURES, join(dir, entry.name))],
  );
}

describe("enrichment fixtures", () => {
  it.each(Object.entries(FIXTURE_SHA256))("%s is byte-exact", (path, expected) => {
    expect(createHash("sha256").update(fixture(path)).digest("hex")).toBe(expected);
  });

  it("every fixture file is listed (and so documented in the README)", () => {
    const present = filesUnder(ENRICH_FIXTURES).filter((path) => !path.startsWith("LICENSES") && path !== "README.md" && path !== ".gitattributes");
    expect(present.sort()).toEqual(Object.keys(FIXTURE_SHA256).sort());
  });
});
