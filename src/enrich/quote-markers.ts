/**
 * The lines mail clients put between a reply and the message it quotes, in the languages
 * contact centres meet most. Every pattern is matched against one line of bounded length,
 * with bounded repetition, so a hostile message cannot make matching slow.
 */

/** Longer lines are body text, never a marker; not matched at all. */
export const MAX_MARKER_LINE_LENGTH = 1000;

// "-----Original Message-----" (Outlook, plain text) and Gmail's forwarded-message line.
const SEPARATOR_LINE = new RegExp(
  "^\\s*[-_=]{2,}\\s*(?:" +
    [
      "original message",
      "ursprüngliche nachricht",
      "originalnachricht",
      "message d'origine",
      "mensaje original",
      "messaggio originale",
      "oorspronkelijk bericht",
      "originalmeddelande",
      "opprinnelig melding",
      "oprindelig meddelelse",
      "wiadomość oryginalna",
      "alkuperäinen viesti",
      "původní zpráva",
      "eredeti üzenet",
      "orijinal ileti",
      "orijinal mesaj",
      "исходное сообщение",
      "原始邮件",
      "原始郵件",
      "元のメッセージ",
      "원본 메시지",
      "forwarded message",
      "weitergeleitete nachricht",
      "message transféré",
      "mensaje reenviado",
      "messaggio inoltrato",
      "doorgestuurd bericht",
      "vidarebefordrat meddelande",
    ].join("|") +
    ")\\s*[-_=]{2,}\\s*$",
  "iu",
);
// Apple Mail's forward header.
const FORWARD_INTRO =
  /^\s*(?:begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié|inicio del mensaje reenviado|inizio messaggio inoltrato|begin doorgestuurd bericht|vidarebefordrat brev)\s*[:：]\s*$/iu;
// Outlook on the web / Outlook for Windows draw a line of underscores above the header block.
const UNDERSCORE_LINE = /^\s*_{10,}\s*$/;

// Outlook's header block: "From: ... / Sent: ... / To: ... / Subject: ...", labels localised,
// sometimes bold-marked ("*From:*") when converted to text.
// Spaces, optional stars, spaces: written so that the two runs of spaces are apart (stars
// between them, or no second run): two runs that can split one run of spaces between them
// cost O(n^2) on "From" and 1000 spaces (3.6 ms a line). Same lines matched.
const label = (words: string[]): RegExp => new RegExp(`^\\s*\\*{0,2}(?:${words.join("|")})\\s*(?:\\*{1,2}\\s*)?[:：]`, "iu");
const FROM_LABEL = label([
  "from",
  "von",
  "de",
  "da",
  "van",
  "från",
  "fra",
  "od",
  "lähettäjä",
  "feladó",
  "kimden",
  "от",
  "寄件者",
  "发件人",
  "差出人",
  "보낸 사람",
  "מאת",
  "από",
]);
const SENT_LABEL = label([
  "sent",
  "date",
  "gesendet",
  "datum",
  "envoyé",
  "date d'envoi",
  "enviado",
  "fecha",
  "inviato",
  "data",
  "verzonden",
  "skickat",
  "sendt",
  "dato",
  "wysłano",
  "lähetetty",
  "päivämäärä",
  "elküldve",
  "dátum",
  "gönderildi",
  "tarih",
  "отправлено",
  "дата",
  "日期",
  "发送时间",
  "送信日時",
  "보낸 날짜",
  "תאריך",
  "ημερομηνία",
  "στάλθηκε",
]);
const TO_LABEL = label([
  "to",
  "an",
  "à",
  "a",
  "para",
  "aan",
  "till",
  "til",
  "do",
  "vastaanottaja",
  "címzett",
  "kime",
  "alıcı",
  "кому",
  "收件者",
  "收件人",
  "宛先",
  "받는 사람",
  "אל",
  "προς",
]);
const SUBJECT_LABEL = label([
  "subject",
  "betreff",
  "objet",
  "asunto",
  "oggetto",
  "onderwerp",
  "ämne",
  "emne",
  "temat",
  "aihe",
  "tárgy",
  "konu",
  "тема",
  "主旨",
  "主题",
  "件名",
  "제목",
  "נושא",
  "θέμα",
]);
/** The header block is From and, within this many lines, Sent/Date and To or Subject. */
const HEADER_BLOCK_LINES = 8;

// "On <date>, <name> <address> wrote:" and its translations, from Gmail, Apple Mail,
// Thunderbird and mobile clients; the attribution may be wrapped over two lines.
const ATTRIBUTION_START = /^\s*(?:on|le|el|il|em|am|op|den|dne|w dniu|dnia|pe|ma|ti|ke|to|la|su|lø|sø|må|в|20\d\d)(?![\p{L}\p{N}])/iu;
const VERB =
  "(?<![\\p{L}\\p{N}])(?:wrote|a écrit|écrit|escribió|ha scritto|scritto|escreveu|schrieb|schreef|skrev|napisał|napisała|napisal|pisze|kirjoitti|написал|написала|yazdı|írta|napsal|napísal)(?![\\p{L}\\p{N}])";
const VERB_ANYWHERE = new RegExp(VERB, "iu");
const VERB_AT_END = new RegExp(`${VERB}\\s*$`, "iu");
const ENDS_WITH_COLON = /[:：]\s*$/u;
/** Where the verb is looked for; an attribution is one sentence. */
const MAX_ATTRIBUTION_LENGTH = 800;
const CJK_ATTRIBUTION = /(?:写道|寫道|のメッセージ|작성)\s*(?:[:：]\s*)?$/u;

export function isSeparatorLine(line: string): boolean {
  return SEPARATOR_LINE.test(line) || FORWARD_INTRO.test(line);
}

export function isUnderscoreLine(line: string): boolean {
  return UNDERSCORE_LINE.test(line);
}

/** Whether an Outlook header block starts at lines[index]. */
export function isHeaderBlockAt(lines: readonly string[], index: number): boolean {
  const first = lines[index];
  if (first === undefined || !FROM_LABEL.test(first)) return false;
  let sent = false;
  let toOrSubject = false;
  for (let offset = 1; offset <= HEADER_BLOCK_LINES && index + offset < lines.length; offset++) {
    const line = lines[index + offset] ?? "";
    if (line.length > MAX_MARKER_LINE_LENGTH) break;
    if (SENT_LABEL.test(line)) sent = true;
    if (TO_LABEL.test(line) || SUBJECT_LABEL.test(line)) toOrSubject = true;
    if (sent && toOrSubject) return true;
  }
  return false;
}

/** Whether lines[index] (possibly wrapped onto the next line) is an "On ... wrote:" attribution. */
export function isAttributionAt(lines: readonly string[], index: number): boolean {
  const line = lines[index] ?? "";
  if (isAttribution(line)) return true;
  const next = lines[index + 1];
  if (next === undefined || !ATTRIBUTION_START.test(line) || next.length > MAX_MARKER_LINE_LENGTH) return false;
  return isAttribution(`${line} ${next}`);
}

/**
 * "On <date>, <name> wrote:" (the verb last) or "Am <date> schrieb <name> <address>:" (the verb
 * inside: German, Dutch, Scandinavian), ending in a colon. Checked in steps, each linear.
 */
function isAttribution(text: string): boolean {
  if (CJK_ATTRIBUTION.test(text)) return true;
  if (text.length > MAX_ATTRIBUTION_LENGTH || !ENDS_WITH_COLON.test(text)) return false;
  const start = ATTRIBUTION_START.test(text);
  if (VERB_AT_END.test(text.replace(ENDS_WITH_COLON, ""))) return start || hasDateOrAddress(text);
  return start && VERB_ANYWHERE.test(text) && hasDateOrAddress(text);
}

/** Attributions name a date or an address; a sentence that happens to end in "wrote:" rarely does. */
function hasDateOrAddress(text: string): boolean {
  return /\d/.test(text) || text.includes("@");
}

/** ">" in the first column, as every client quotes; indented ">>>" is an SMTP transcript, not a quote. */
export function isQuotedLine(line: string): boolean {
  return line.startsWith(">");
}
