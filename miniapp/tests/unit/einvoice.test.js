import { normaliseDocumentNumber, validateDocumentNumber } from '../../src/lib/einvoice'

describe('paperless document numbers (paperless.yaml rules)', () => {
  test('a 全电 e-invoice number has exactly 20 digits', () => {
    expect(validateDocumentNumber('e_invoice', '26312000000012345678')).toEqual({ ok: true, value: '26312000000012345678' })
    expect(validateDocumentNumber('e_invoice', '2631 2000 0000 1234 5678')).toEqual({ ok: true, value: '26312000000012345678' })
    expect(validateDocumentNumber('e_invoice', '2631200000001234567').code).toBe('invalid_document_number')
    expect(validateDocumentNumber('e_invoice', '2631200000001234567X').code).toBe('invalid_document_number')
    expect(validateDocumentNumber('e_invoice', '').code).toBe('empty')
  })

  test('e-tickets and e-statements: 8 to 32 letters or digits', () => {
    expect(validateDocumentNumber('e_ticket', 'AB12cd34').ok).toBe(true)
    expect(validateDocumentNumber('e_statement', 'A'.repeat(32)).ok).toBe(true)
    expect(validateDocumentNumber('e_statement', 'A'.repeat(33)).code).toBe('invalid_document_number')
    expect(validateDocumentNumber('e_ticket', 'AB12-cd3').ok).toBe(false)
    expect(validateDocumentNumber('paper', '12345678').code).toBe('bad_item_type')
  })

  test('normalising strips spaces, ideographic spaces and dashes', () => {
    expect(normaliseDocumentNumber(' 1234\u30005678-90 ')).toBe('1234567890')
    expect(normaliseDocumentNumber(null)).toBe('')
  })
})
