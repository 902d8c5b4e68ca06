// Formatting of the integers the API sends (grams, points) and its timestamps, for zh and en.
// Pure functions: no uni/wx calls, so jest tests them directly.

const SHANGHAI_OFFSET_MS = 8 * 3600 * 1000 // Asia/Shanghai has had no daylight saving since 1991

function trimDecimals(text) {
  return text.indexOf('.') === -1 ? text : text.replace(/0+$/, '').replace(/\.$/, '')
}

/** Thousands separators for an integer, e.g. 12345 -> "12,345" (negative kept). */
export function groupDigits(value) {
  const n = Math.trunc(Number(value) || 0)
  const sign = n < 0 ? '-' : ''
  return sign + String(Math.abs(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}

/** Grams of CO2e as the largest sensible unit: 850 g, 1.25 kg, 3.4 t (two decimals at most). */
export function formatGrams(grams, lang = 'zh') {
  const g = Math.trunc(Number(grams) || 0)
  const abs = Math.abs(g)
  const units = lang === 'en' ? ['g', 'kg', 't'] : ['克', '千克', '吨']
  const sep = lang === 'en' ? ' ' : ' '
  if (abs < 1000) return `${g}${sep}${units[0]}`
  if (abs < 1000000) return `${trimDecimals((g / 1000).toFixed(2))}${sep}${units[1]}`
  return `${trimDecimals((g / 1000000).toFixed(2))}${sep}${units[2]}`
}

/** Points with separators and unit: "1,234 积分" / "1,234 pts" ("1 pt"). */
export function formatPoints(points, lang = 'zh') {
  const n = Math.trunc(Number(points) || 0)
  if (lang === 'en') return `${groupDigits(n)} ${Math.abs(n) === 1 ? 'pt' : 'pts'}`
  return `${groupDigits(n)} 积分`
}

/** A signed ledger amount: "+12" / "-300". */
export function formatSignedPoints(amount) {
  const n = Math.trunc(Number(amount) || 0)
  return n > 0 ? `+${groupDigits(n)}` : groupDigits(n)
}

/** The account's equivalents ({trees: "1.2", car_km: "35.0"}) as two short sentences. */
export function formatEquivalents(equivalents, lang = 'zh') {
  const trees = equivalents && equivalents.trees != null ? String(equivalents.trees) : '0'
  const km = equivalents && equivalents.car_km != null ? String(equivalents.car_km) : '0'
  if (lang === 'en') {
    return {
      trees: `What ${trees} tree${trees === '1.0' || trees === '1' ? '' : 's'} absorb in a year`,
      carKm: `${km} km not driven in a petrol car`,
    }
  }
  return { trees: `相当于 ${trees} 棵树一年的吸收量`, carKm: `相当于少开 ${km} 公里燃油车` }
}

function pad(n) {
  return n < 10 ? `0${n}` : String(n)
}

/** The Asia/Shanghai wall-clock parts of an ISO timestamp (or Date), whatever the device's zone. */
export function shanghaiParts(value) {
  const ms = value instanceof Date ? value.getTime() : Date.parse(value)
  if (Number.isNaN(ms)) return null
  const d = new Date(ms + SHANGHAI_OFFSET_MS)
  return {
    year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate(),
    hour: d.getUTCHours(), minute: d.getUTCMinutes(),
  }
}

/** "2026-11-27" in Asia/Shanghai; a bare date ("2026-11-27") is returned as is. */
export function formatDate(value) {
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(value)) return value
  const p = shanghaiParts(value)
  return p ? `${p.year}-${pad(p.month)}-${pad(p.day)}` : ''
}

/** "2026-11-27 14:05" in Asia/Shanghai. */
export function formatDateTime(value) {
  const p = shanghaiParts(value)
  return p ? `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}` : ''
}

/**
 * How long to wait before asking for a fresh coupon QR token. The server's own issued_at/expires_at
 * give the lifetime, so a wrong device clock does not matter; we ask `marginSeconds` early.
 */
export function qrRefreshDelayMs(qr, marginSeconds = 10) {
  const lifetime = Date.parse(qr.expires_at) - Date.parse(qr.issued_at)
  if (Number.isNaN(lifetime)) return 1000
  return Math.max(1000, lifetime - marginSeconds * 1000)
}

/** Bars for the 30-day trend: each day's grams as a 0..100 height (at least 2 when non-zero). */
export function trendBars(daily) {
  const days = Array.isArray(daily) ? daily : []
  const max = days.reduce((m, d) => Math.max(m, d.grams || 0), 0)
  return days.map((d) => ({
    date: d.date,
    grams: d.grams || 0,
    height: max === 0 || !d.grams ? 0 : Math.max(2, Math.round((d.grams / max) * 100)),
  }))
}
