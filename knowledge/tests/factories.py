"""Builders for test files: real PDFs, DOCX and zip archives made in memory."""

from __future__ import annotations

import io
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile


def upload(name: str, data: bytes | str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data.encode("utf-8") if isinstance(data, str) else data)


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A minimal, valid PDF with one Helvetica text line per list item on each page."""
    objects: list[bytes] = []
    page_ids = []
    font_id = 3
    next_id = 4
    page_objects: list[tuple[int, int, bytes]] = []
    for lines in pages:
        stream = (
            "BT /F1 12 Tf 72 720 Td 16 TL "
            + " ".join(f"({_pdf_escape(line)}) Tj T*" for line in lines)
            + " ET"
        )
        page_id, content_id = next_id, next_id + 1
        next_id += 2
        page_ids.append(page_id)
        page_objects.append((page_id, content_id, stream.encode("latin-1")))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for _page_id, content_id, stream in page_objects:
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def encrypted_pdf_bytes(password: str = "s3cret") -> bytes:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(pdf_bytes([["Secret prices"]])))
    writer = pypdf.PdfWriter()
    for page in reader.pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(blocks: list[tuple[str, list[str]]]) -> bytes:
    """A Word document: each block is (heading, paragraphs)."""
    import docx

    document = docx.Document()
    for heading, paragraphs in blocks:
        if heading:
            document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bomb_docx_bytes(uncompressed_mb: int = 200) -> bytes:
    """A zip that claims to be a DOCX and expands to `uncompressed_mb` of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            chunk = b"\0" * (1024 * 1024)
            for _ in range(uncompressed_mb):
                member.write(chunk)
    return out.getvalue()


def plain_zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return out.getvalue()


# A small shop FAQ in the JSON import format, shared by the search and answer tests.
SHOP_FAQ = [
    {
        "faq_id": "hours",
        "question": "What are your opening hours?",
        "answer": "We are open 9:00-18:00 Monday to Saturday.",
        "example_questions": ["When do you open?", "What time do you close on Saturday?"],
    },
    {
        "faq_id": "returns",
        "question": "How do I return an item?",
        "answer": "Bring it back within 30 days with the receipt.",
        "example_questions": ["Can I get a refund?", "What is your return policy?"],
    },
    {
        "faq_id": "repairs",
        "question": "Do you repair e-bikes?",
        "answer": "Yes, our workshop services all e-bike brands.",
        "example_questions": ["Can you fix my electric bike?"],
    },
]
