// Checks a paperless document number before it is sent, with the rules of the paperless methodology
// (scenarios/methodologies/paperless.yaml): a 全电 e-invoice number is 20 digits; e-tickets and
// e-statements are 8–32 letters or digits. The server checks again; this only saves a round trip.

const PATTERNS = {
  e_invoice: /^[0-9]{20}$/,
  e_ticket: /^[0-9A-Za-z]{8,32}$/,
  e_statement: /^[0-9A-Za-z]{8,32}$/,
}

/** Removes the spaces and dashes people type or paste between digit groups. */
export function normaliseDocumentNumber(raw) {
  return String(raw == null ? '' : raw).replace(/[\s\u3000-]+/g, '')
}

/** {ok: true, value} or {ok: false, code} with code one of empty, bad_item_type, invalid_document_number. */
export function validateDocumentNumber(itemType, raw) {
  const value = normaliseDocumentNumber(raw)
  if (!PATTERNS[itemType]) return { ok: false, code: 'bad_item_type' }
  if (value === '') return { ok: false, code: 'empty' }
  if (!PATTERNS[itemType].test(value)) return { ok: false, code: 'invalid_document_number' }
  return { ok: true, value }
}

export const ITEM_TYPES = Object.keys(PATTERNS)
