import {
  formatDate, formatDateTime, formatEquivalents, formatGrams, formatPoints, formatSignedPoints,
  groupDigits, qrRefreshDelayMs, trendBars,
} from '../../src/lib/format'

describe('grams', () => {
  test.each([
    [0, 'zh', '0 克'], [850, 'zh', '850 克'], [999, 'en', '999 g'], [1000, 'zh', '1 千克'],
    [1250, 'en', '1.25 kg'], [1255, 'en', '1.25 kg'], [1999999, 'zh', '2 吨'], [3400000, 'en', '3.4 t'], [-500, 'en', '-500 g'],
  ])('%d in %s is %s', (grams, lang, text) => {
    expect(formatGrams(grams, lang)).toBe(text)
  })
})

describe('points', () => {
  test('thousands separators and units', () => {
    expect(groupDigits(1234567)).toBe('1,234,567')
    expect(groupDigits(-1234)).toBe('-1,234')
    expect(formatPoints(12345, 'zh')).toBe('12,345 积分')
    expect(formatPoints(1, 'en')).toBe('1 pt')
    expect(formatPoints(2, 'en')).toBe('2 pts')
    expect(formatSignedPoints(12)).toBe('+12')
    expect(formatSignedPoints(-300)).toBe('-300')
    expect(formatSignedPoints(0)).toBe('0')
  })
})

describe('equivalents', () => {
  test('sentences in both languages', () => {
    expect(formatEquivalents({ trees: '1.2', car_km: '35.0' }, 'zh')).toEqual({
      trees: '相当于 1.2 棵树一年的吸收量', carKm: '相当于少开 35.0 公里燃油车',
    })
    expect(formatEquivalents({ trees: '1.0', car_km: '6.3' }, 'en').trees).toBe('What 1.0 tree absorb in a year')
    expect(formatEquivalents(null, 'en').carKm).toBe('0 km not driven in a petrol car')
  })
})

describe('dates in Asia/Shanghai whatever the device zone', () => {
  test('a UTC evening is the next Shanghai day', () => {
    expect(formatDate('2026-03-31T16:30:00+00:00')).toBe('2026-04-01')
    expect(formatDateTime('2026-03-31T16:30:00Z')).toBe('2026-04-01 00:30')
    expect(formatDate('2026-12-31')).toBe('2026-12-31')
    expect(formatDate('not a date')).toBe('')
  })
})

describe('QR refresh', () => {
  test('asks 10 s before the server-stated expiry, from the server clock', () => {
    expect(qrRefreshDelayMs({ issued_at: '2026-01-01T00:00:00Z', expires_at: '2026-01-01T00:01:00Z' })).toBe(50000)
    expect(qrRefreshDelayMs({ issued_at: '2026-01-01T00:00:00Z', expires_at: '2026-01-01T00:00:05Z' })).toBe(1000)
    expect(qrRefreshDelayMs({ issued_at: 'x', expires_at: 'y' })).toBe(1000)
  })
})

describe('trend bars', () => {
  test('scaled to the busiest day, visible when non-zero', () => {
    const bars = trendBars([{ date: 'a', grams: 0 }, { date: 'b', grams: 1 }, { date: 'c', grams: 1000 }])
    expect(bars.map((b) => b.height)).toEqual([0, 2, 100])
    expect(trendBars(undefined)).toEqual([])
  })
})
