import { ApiError, errorFromResponse, messageFor, MESSAGES } from '../../src/lib/errors'

describe('error messages', () => {
  test('every entry of the table has both languages', () => {
    for (const [code, texts] of Object.entries(MESSAGES)) {
      expect([code, typeof texts.zh, typeof texts.en]).toEqual([code, 'string', 'string'])
      expect(texts.zh).toMatch(/[\u4e00-\u9fff]/)
    }
  })

  test('our table wins, then the server message, then a generic one', () => {
    const used = errorFromResponse(409, { error: { code: 'coupon_already_used', message: 'x', message_zh: 'y' } })
    expect(messageFor(used, 'zh')).toBe(MESSAGES.coupon_already_used.zh)
    const other = errorFromResponse(404, { error: { code: 'offer_not_found', message: 'No such offer.', message_zh: '未找到该权益。' } })
    expect(messageFor(other, 'zh')).toBe('未找到该权益。')
    expect(messageFor(other, 'en')).toBe('No such offer.')
    expect(messageFor(new Error('boom'), 'en')).toBe(MESSAGES.internal_error.en)
    expect(messageFor({ code: 'network_error' }, 'zh')).toBe(MESSAGES.network_error.zh)
  })

  test('a non-JSON answer still gets a code by status', () => {
    expect(errorFromResponse(502, '<html>').code).toBe('internal_error')
    expect(errorFromResponse(429, null).code).toBe('rate_limited')
    expect(errorFromResponse(401, null)).toBeInstanceOf(ApiError)
  })
})
