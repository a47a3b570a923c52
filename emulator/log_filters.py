"""What the logs list can be narrowed by, as SQL over the store's tables (see `store_writer.SCHEMA`).

Every filter is one clause ANDed with the others; the list is always read newest first by `seq`, so the
first page stops as soon as it has `limit` rows. Search:

- `mrn`: a patient identifier (an MRN or any other ID of an `Identifiers` list), exact, through
  the `log_keys` table the writer fills (an indexed lookup however large the store) and the few
  thousand newest rows it has not folded in yet (`log_keys_recent`, scanned).
- `q`: a log ID (exact) if one has it, else a patient identifier (exact) if a log has it, else text
  (case-insensitive for ASCII) in the request bodies of the log's attempts, its errors, or the
  source's or destination's name. Text is scanned at read time rather than indexed at write time, so
  `POST /endpoint` pays nothing for it; a page of a text search therefore looks through at most
  TEXT_WINDOW logs (by seq) and, when it found fewer than asked, its cursor says where to go on.
"""

from __future__ import annotations

from typing import Any

TEXT_WINDOW = 5_000  # logs a text search looks through per page: a bounded answer time at any store size
COLUMN_FILTERS = {
    "logId": "logs.id = ?",
    "dataModel": "logs.data_model = ?",
    "eventType": "logs.event_type = ?",
    "status": "logs.status = ?",
    "type": "logs.type = ?",
    "sourceId": "logs.source_id = ?",
    "destinationId": "logs.destination_id = ?",
    "createdAfter": "logs.created_at >= ?",
    "createdBefore": "logs.created_at < ?",
}
# Columns whose index leaves out its commonest value (see store_writer.SCHEMA): a filter on another value
# names the index's condition too, which is how SQLite knows the partial index answers it.
PARTIAL = {"status": "SUCCEEDED", "type": "SEND"}
SEARCH_FILTERS = ("mrn", "q")
NAMES = (*COLUMN_FILTERS, *SEARCH_FILTERS)

_BY_KEY = ("logs.id IN (SELECT log_id FROM log_keys WHERE key = ? "
           "UNION ALL SELECT r.log_id FROM log_keys_recent r, json_each(r.keys) j WHERE j.value = ?)")
# A log's attempts: the one in its own row (attempt_exchange) and those in attempts.
_TEXT = ("(logs.errors LIKE ? ESCAPE '\\' "
         "OR logs.source_name LIKE ? ESCAPE '\\' OR logs.destination_name LIKE ? ESCAPE '\\' "
         "OR EXISTS (SELECT 1 FROM exchanges e WHERE e.id = logs.attempt_exchange "
         "AND CAST(e.request_body AS TEXT) LIKE ? ESCAPE '\\') "
         "OR EXISTS (SELECT 1 FROM attempts a JOIN exchanges e ON e.id = a.exchange_id "
         "WHERE a.log_id = logs.id AND CAST(e.request_body AS TEXT) LIKE ? ESCAPE '\\'))")


def where(filters: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """SQL clauses and their parameters; KeyError for a name not in NAMES.

    `q` here is text only: `LogStore.list_logs` first turns a `q` that is a log ID or a patient
    identifier into `logId` or `mrn`.
    """
    clauses: list[str] = []
    params: list[Any] = []
    for name, value in filters.items():
        if name == "mrn":
            clauses.append(_BY_KEY)
            params += [value, value]
        elif name == "q":
            pattern = "%" + like_escape(str(value)) + "%"
            clauses.append(_TEXT)
            params += [pattern] * 5
        else:
            clauses.append(COLUMN_FILTERS[name])
            params.append(value)
            if name in PARTIAL and value != PARTIAL[name]:
                clauses.append(f"logs.{name} != '{PARTIAL[name]}'")
    return clauses, params


def like_escape(text: str) -> str:
    """`text` matched literally by LIKE ... ESCAPE '\\': its % and _ are not wildcards."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
