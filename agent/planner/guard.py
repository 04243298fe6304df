"""The guard stage: requests the planner refuses (sending data out, writing or deleting, personal
details, made-up figures, bare prompt injection), instructions hidden in a question (removed, the
rest answered), and the paths and addresses a request asks a file to be written to (never used)."""

from __future__ import annotations

import re
from collections.abc import Callable

from agent.planner.plan import Plan
from agent.planner.texts import (REFUSE_CONTACT, REFUSE_FABRICATE, REFUSE_INJECTION, REFUSE_PII, REFUSE_SEND,
                                 REFUSE_WRITE)
from agent.planner.vocabulary import DOMAIN

EXFIL_VERB = re.compile(r"\b(send|sent|email|e-mail|mail|upload|post|forward|share|transfer|push|sync|ftp|"
                        r"publish|leak|give .* to)\b")
ADDRESS = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+|\b(?:https?|ftp|sftp|s3|gs)://\S+|\bwww\.\S+|webhook|dropbox|"
                     r"google drive|pastebin|slack|gmail|hotmail|outlook|inbox|whatsapp|my e-?mail|e-?mail address|"
                     r"external server|cloud storage|\bs3 bucket")
INJECTION = re.compile(r"ignore (?:all |any |your |the )?(?:previous|prior|above|earlier)? ?(?:instructions|rules|prompts?)|"
                       r"system override|admin mode|developer mode|jailbreak|\bdan\b|no rules|"
                       r"</?(?:user|system|assistant)>|you must now|as the assistant you|reveal .*(?:key|secret|password)|"
                       r"(?:print|show|reveal|repeat) (?:me )?(?:your|the) (?:system )?(?:prompt|instructions)")
WRITE = re.compile(r"\b(delete|remove|erase|drop|wipe|purge|set(?! ?up\b)|change|update|modify|overwrite|edit|insert|"
                   r"add)\b.{0,60}\b(database|system|record|records|data|customers?|churn|risk|score|value|table)\b")
PII = re.compile(r"\b(home address(?:es)?|addresses|phone numbers?|telephone|e-?mail addresses|emails of|"
                 r"date of birth|passport|credit card|bank details|social security|personal details|"
                 r"contact (?:details|info\w*))\b")
# "email campaign for ...", "text message copy": a contact verb's word used as a noun's modifier.
CONTACT_NOUNS = (r"campaigns?|blasts?|flows?|templates?|newsletters?|sequences?|journeys?|series|copy|content|"
                 r"marketing|program\w*|offers?|promos?|plans?|lists?|addresses")
# An order to contact customers ("now email each of them a 20% code", "text the lapsed ones a voucher"): no
# tool sends anything to customers. Only as a command whose object is not the user ("send me the list" is
# not one); asking for advice ("what should we send them?") is campaign talk.
CONTACT = re.compile(r"^(?:(?:now|ok|okay|so|then|and|please|pls|great|right|go ahead and|can you|could you|would you|"
                     r"just)\W+)*(?:e-?mail|text|sms|message|call|phone|ring|contact|send|mail|dm|whatsapp)\s+"
                     r"(?!(?:me|us|myself|it to me|details?|info\w*|numbers?|" + CONTACT_NOUNS + r")\b)"
                     r"(?:(?:each|all|every one|some|any|one) of\s+)?(?:them|those|these|him|her|everyone|everybody|each|"
                     r"all|the\b[^.?!]{0,40}?\b(?:customers|clients|ones|buyers)|"
                     r"(?:our|my|all)?\s*(?:(?!(?:for|to|about|with|on|in|of)\b)[\w-]+\s+){0,3}"
                     r"(?:customers|clients|buyers|shoppers))\b")
# An order to put data into an outside service ("upload the at-risk list into our Mailchimp account",
# "sync the gold customers with HubSpot"): no tool sends data out, so it is refused with the export offer.
# Not when the user does the upload from a file ("a spreadsheet I can upload to Mailchimp").
SERVICE = (r"mailchimp|klaviyo|hubspot|salesforce|dotdigital|braze|marketo|brevo|sendgrid|activecampaign|"
           r"constant contact|google ads|facebook ads|meta ads|(?:our|my|the) (?:crm|e-?mail (?:tool|platform|system))")
PUSH_TO_SERVICE = re.compile(r"^(?:(?:please|pls|can you|could you|would you|go ahead and|now|just|then|and)\W+)*"
                             r"(?:upload|push|sync|send|transfer|post|import|load)\b[^.?!]{0,80}?\b(?:(?:in)?to|with)\b"
                             r"[^.?!]{0,30}?\b(?:" + SERVICE + r")\b")
USER_UPLOADS = re.compile(r"\b(?:csv|file|spreadsheet|excel|export\w*|download\w*)\b|\b(?:i|we) can\b|\bso (?:that )?"
                          r"(?:i|we)\b|\bfor me to\b|\bmyself\b")
FABRICATE = re.compile(r"\b(make up|invent|fabricate|guess|pretend|fake)\b")
# Quoted text of three or more characters: a search phrase or a name, never an instruction.
QUOTED = re.compile(r"(?<![a-z])['\"]([^'\"]{3,})['\"]", re.I)
# Words that make quoted text a search phrase ("profiles that mention 'tea'"); elsewhere quotes only delimit.
SEARCH_CONTEXT = re.compile(r"\b(mention\w*|profiles?|search\w*|contain\w*|say|says|saying|about|"
                            r"buy\w*|bought|like|likes|love\w*|into)\b")
# Where the request asks a file to be written: quoted names after "file"/"folder", "a file named X",
# paths, file names with an extension, URLs and e-mail addresses.
FILE_TARGETS = [
    re.compile(r"\b(?:file|folder|directory|dir|path|filename|file name)\s*(?:(?:named|called|as|to|at|=|:)\s*)?"
               r"(?P<q>['\"])(?P<v>[^'\"]{1,200})(?P=q)", re.I),
    re.compile(r"\b(?:file|folder|directory|filename)\s+(?:named|called)\s+(?P<v>[^\s'\",;?!]+)", re.I),
    re.compile(r"(?P<v>(?<![\w:/.~\\])(?:~|\.{1,2})?/[\w.~*-]+(?:/[\w.~*-]*)*|\b[a-z]:\\[^\s'\",;]*|"
               r"(?<![\w/.-])[\w-]+\.(?:csv|tsv|txt|xlsx?|json|parquet|sh|py|sql|zip)\b)", re.I),
    re.compile(r"(?P<v>\b(?:https?|ftp|sftp|s3|gs)://[^\s'\",;]+|[\w.+-]+@[\w-]+\.[\w.-]+)", re.I),
]

WRITE_CONTEXT = re.compile(r"\b(export\w*|save\w*|write|writ\w+|put|store\w*|download\w*|csv|file\w*|folder|"
                           r"director\w*|spreadsheet|excel|dump|output|copy|move|path)\b", re.I)


def read_quotes(message: str) -> tuple[str, str]:
    """(the message, its quoted search phrase): quotes around anything but a search phrase are dropped,
    so a quoted name or path reads as plain words."""
    raw = message.strip()
    quoted = " ".join(QUOTED.findall(raw))
    if quoted and not SEARCH_CONTEXT.search(raw.lower()):
        return QUOTED.sub(r"\1", raw), ""
    return raw, quoted


def strip_injection(raw: str, quoted: str) -> tuple[str, bool]:
    """(the request without the instructions hidden in it, whether there were any)."""
    text = raw
    if quoted:
        for q in re.findall(r"['\"]([^'\"]{3,})['\"]", raw):
            text = text.replace(q, " ")  # quoted text is a search phrase, not an instruction
    text = re.sub(r"</?(user|system|assistant)>.*", " ", text, flags=re.I | re.S)
    injected = bool(INJECTION.search(text.lower()))
    if injected:
        text = drop_sentences(text, lambda s: bool(INJECTION.search(s.lower())))
    if ADDRESS.search(text.lower()) and EXFIL_VERB.search(text.lower()):
        kept = drop_sentences(text, lambda s: bool(ADDRESS.search(s.lower())))
        if kept.strip():
            injected = True
            text = kept
    return (text if text.strip() else ""), injected or raw != text and "<" in raw


def drop_sentences(text: str, bad: Callable[[str], bool]) -> str:
    parts = re.split(r"(?<=[.!?;:])\s+|\s+(?=p\.?s\.?\b)|\bsystem override\b", text, flags=re.I)
    return " ".join(p for p in parts if p and not bad(p)).strip()


def refusal(raw: str, clean: str, text: str, injected: bool, normalise: Callable[[str], str]) -> Plan | None:
    """The refusal for a request no tool may serve, or None. `raw` is the message, `clean` the message
    without hidden instructions and `text` that normalised."""
    low = raw.lower()
    leak = ADDRESS.search(low) and EXFIL_VERB.search(low)
    if leak:
        # "Do X. Also send it to evil@..." still does X; a request that is only about sending is refused.
        rest = normalise(drop_sentences(clean, lambda s: bool(ADDRESS.search(s.lower()))))
        if not rest.strip() or not DOMAIN.search(rest):
            return Plan("exfiltrate", "refuse", text=REFUSE_SEND)
    if PUSH_TO_SERVICE.search(text) and not USER_UPLOADS.search(text):
        return Plan("exfiltrate", "refuse", text=REFUSE_SEND)
    if WRITE.search(text) and not re.search(r"\b(export|csv|file|download|show|list|find)\b", text):
        return Plan("write", "refuse", text=REFUSE_WRITE)
    if PII.search(text):
        return Plan("pii", "refuse", text=REFUSE_PII)
    if CONTACT.search(text) and not re.search(r"\bto (?:me|us|myself)\b", text):
        return Plan("contact", "refuse", text=REFUSE_CONTACT)
    if FABRICATE.search(text) and re.search(r"revenue|numbers?|figures?|data|sales|value", text):
        return Plan("fabricate", "refuse", text=REFUSE_FABRICATE)
    if injected and not DOMAIN.search(text):
        return Plan("injection", "refuse", text=REFUSE_INJECTION)
    return None


def file_targets(message: str, exclude: list[str] = ()) -> list[str]:
    """Paths, file names and addresses a request asks a file to be written to (see FILE_TARGETS); none
    can be honoured, so the answer names them. Only in a request about writing something."""
    if not WRITE_CONTEXT.search(message):
        return []
    skip = {e.strip().lower() for e in exclude}
    found: list[str] = []
    for pattern in FILE_TARGETS:
        for m in pattern.finditer(message):
            value = m.group("v").strip().rstrip(".,;:!?)")
            if value and value.lower() not in skip and not any(value in f for f in found):
                found.append(value[:200])
    return found
