"""The HTTP calls Redox makes to a destination: deliveries and the verification handshake."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson

from emulator.clock import iso
from emulator.delivery.http1 import Answer, Client

WRONG_TOKEN = "not-the-verification-token"  # what a scripted wrong-token delivery carries
JSON = "application/json"
FHIR_JSON = "application/fhir+json"  # a FHIR notification Bundle (FHIR R4's JSON media type)
__all__ = ["FHIR_JSON", "JSON", "WRONG_TOKEN", "Answer", "Verification", "deliver", "handshake"]


@dataclass(slots=True)
class Verification:
    destination_id: str
    form: str  # "post" or "get"
    ok: bool
    status: int
    challenge: str
    explanation: str
    at: float

    def view(self) -> dict[str, object]:
        return {"destinationId": self.destination_id, "form": self.form, "verified": self.ok,
                "httpStatus": self.status, "challenge": self.challenge, "explanation": self.explanation,
                "at": iso(self.at)}


async def deliver(client: Client, url: str, body: bytes, token: str, timeout: float,
                  content_type: str = JSON) -> Answer:
    headers = {"Content-Type": content_type, "verification-token": token}
    return await client.request("POST", url, headers, body, timeout)


async def handshake(client: Client, destination_id: str, url: str, token: str, form: str,
                    timeout: float, now: float) -> tuple[Verification, Answer, bytes]:
    """Redox's verification: POST {verification-token, challenge} or GET ?challenge=&verification-token=.

    The destination passes when it answers 200 with the challenge somewhere in the body.
    Returns the verdict, the raw answer and what was sent (for the journal).
    """
    challenge = str(uuid.uuid4())
    headers = {"application-name": "RedoxEngine"}
    if form == "get":
        sent = b""
        parts = urlsplit(url)
        ours = urlencode({"challenge": challenge, "verification-token": token})
        query = f"{parts.query}&{ours}" if parts.query else ours
        answer = await client.request("GET", urlunsplit(parts._replace(query=query)), headers, sent, timeout)
    else:
        sent = orjson.dumps({"verification-token": token, "challenge": challenge})
        answer = await client.request("POST", url, {**headers, "Content-Type": "application/json"}, sent, timeout)
    if answer.error is not None:
        ok, why = False, answer.error
    elif answer.status != 200:
        ok, why = False, f"answered {answer.status}; a destination must answer the handshake with 200"
    elif challenge.encode() not in answer.body:
        ok, why = False, ("answered 200 without the challenge; the body must contain it, bare or "
                          'as {"challenge": "<value>"}')
    else:
        ok, why = True, "answered 200 with the challenge"
    return Verification(destination_id, form, ok, answer.status, challenge, why, now), answer, sent

