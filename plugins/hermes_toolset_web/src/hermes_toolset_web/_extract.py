"""Readable text from fetched bodies: HTML through trafilatura (links and title through lxml),
PDF through pypdf, text types as they are. Pure functions of bytes, run in a worker thread."""

from __future__ import annotations

import codecs
import io
import re
from typing import Any
from urllib.parse import urljoin, urlsplit

__all__ = ["decode", "extract_html", "extract_pdf", "extract"]

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.I)
_SPACE = re.compile(r"[ \t\r\f\v]+")
_BLANKS = re.compile(r"\n\s*\n\s*\n+")
_WESTERN = {
    "English", "French", "German", "Spanish", "Portuguese", "Italian", "Dutch", "Danish", "Swedish",
    "Norwegian", "Finnish", "Catalan", "Indonesian", "Malay", "Icelandic",
}


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def decode(body: bytes, charset: str | None) -> str:
    """Text of an HTML or text body: the HTTP charset, a BOM, a ``<meta charset>``, UTF-8, then
    detection; never fails (undecodable bytes become U+FFFD)."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(name, "replace").lstrip("\ufeff")
    name = _codec(charset)
    if name is None:
        m = _META_CHARSET.search(body[:8192])
        name = _codec(m.group(1).decode("ascii", "replace")) if m else None
    if name is not None:
        if name == "latin-1" or name == "iso8859-1":
            name = "cp1252"  # what browsers do for "iso-8859-1" (WHATWG encoding standard)
        return body.decode(name, "replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(body[:200_000]).best()
    if best is None:
        return body.decode("cp1252", "replace")
    if best.language in _WESTERN and best.encoding != "cp1252":
        # Western text without a declared charset is windows-1252 (what browsers assume); the
        # detector may name a sibling code page that decodes the same bytes into wrong letters.
        try:
            return body.decode("cp1252")
        except UnicodeDecodeError:
            pass
    return body.decode(best.encoding, "replace")


def _clean(text: str) -> str:
    lines = (_SPACE.sub(" ", line).strip() for line in text.splitlines())
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _links(tree: Any, base: str, limit: int) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    if limit <= 0:
        return out
    for a in tree.iter("a"):
        href = (a.get("href") or "").strip()
        if not href or href.startswith("#"):
            continue
        url = urljoin(base, href)
        if urlsplit(url).scheme not in ("http", "https"):
            continue  # javascript:, mailto:, data: ...
        url = url.split("#", 1)[0]
        if url in seen:
            continue
        seen.add(url)
        out.append({"url": url, "text": _SPACE.sub(" ", a.text_content()).strip()[:200]})
        if len(out) >= limit:
            break
    return out


def extract_html(html: str, url: str, *, max_links: int) -> dict[str, Any]:
    """``{"title", "content", "links"}`` of an HTML document."""
    import lxml.html
    import trafilatura

    html = _XML_DECL.sub("", html, count=1)  # lxml refuses str input with an encoding declaration
    if not html.strip():
        return {"title": "", "content": "", "links": []}
    try:
        tree = lxml.html.document_fromstring(html)
    except Exception:  # noqa: BLE001 - lxml's parser errors on garbage; report empty text
        return {"title": "", "content": "", "links": []}
    base = url
    base_el = tree.find(".//base[@href]")
    if base_el is not None:
        base = urljoin(url, base_el.get("href"))
    title_el = tree.find(".//title")
    title = _SPACE.sub(" ", title_el.text_content()).strip() if title_el is not None else ""
    links = _links(tree, base, max_links)
    # trafilatura gets the text, not our tree: it parses faster than it copies a given tree
    # (measured), and our tree stays intact for the fallback below.
    text = trafilatura.extract(html, url=url, include_tables=True, include_comments=False)
    if not text:
        for bad in tree.xpath("//script|//style|//noscript|//template"):
            bad.drop_tree()
        body = tree.find(".//body")
        text = (body if body is not None else tree).text_content()
    if not title:
        h1 = tree.find(".//h1")
        title = _SPACE.sub(" ", h1.text_content()).strip() if h1 is not None else ""
    return {"title": title, "content": _clean(text), "links": links}


def extract_pdf(body: bytes) -> dict[str, Any]:
    """``{"title", "content", "pages"}`` of a PDF (text layer only; scanned pages give no text).

    Raises:
        ValueError: the PDF is encrypted or unreadable.
    """
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted:
            raise ValueError("the PDF is encrypted")
        title = ""
        meta = reader.metadata
        if meta is not None and meta.title:
            title = str(meta.title)
        pages = [page.extract_text() or "" for page in reader.pages]
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 - pypdf raises many types for broken files
        raise ValueError(f"unreadable PDF: {type(e).__name__}: {e}") from None
    return {"title": title, "content": _clean("\n\n".join(pages)), "pages": len(pages)}


def extract(body: bytes, media_type: str, charset: str | None, url: str, *, max_links: int) -> dict[str, Any]:
    """Dispatch on the media type."""
    if media_type == "application/pdf":
        return extract_pdf(body)
    text = decode(body, charset)
    if media_type in ("text/html", "application/xhtml+xml"):
        return extract_html(text, url, max_links=max_links)
    return {"title": "", "content": text.strip(), "links": []}
