import fs from 'fs'
import path from 'path'
import { STRINGS, translate } from '../../src/lib/i18n'
import { explanationLines } from '../../src/lib/explain'

const SRC = path.join(__dirname, '../../src')

function sources(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return sources(full)
    return /\.(vue|js)$/.test(entry.name) ? [fs.readFileSync(full, 'utf8')] : []
  })
}

test('Chinese and English have the same strings', () => {
  expect(Object.keys(STRINGS.en).sort()).toEqual(Object.keys(STRINGS.zh).sort())
})

test('every string a page asks for exists', () => {
  const text = sources(path.join(SRC, 'pages')).concat(sources(path.join(SRC, 'components'))).join('\n')
  const literal = [...text.matchAll(/(?<![\w$.])t\('([\w.]+)'[,)]/g)].map((m) => m[1])
  const labels = [...text.matchAll(/label: '([\w.]+)'/g)].map((m) => m[1])
  expect(literal.length).toBeGreaterThan(50)
  const missing = literal.concat(labels).filter((key) => STRINGS.zh[key] === undefined)
  expect(missing).toEqual([])
  const prefixes = [...text.matchAll(/(?<![\w$.])t\('([\w.]+\.)' \+/g)].map((m) => m[1])
  for (const prefix of prefixes) expect(Object.keys(STRINGS.zh).some((k) => k.startsWith(prefix))).toBe(true)
})

test('placeholders are filled; a missing key shows itself', () => {
  expect(translate('zh', 'rewards.remaining', { n: 3 })).toBe('剩余 3 份')
  expect(translate('en', 'rewards.remaining', { n: 3 })).toBe('3 left')
  expect(translate('en', 'no.such.key')).toBe('no.such.key')
  expect(translate('fr', 'nav.home')).toBe('首页')
})

test('a ledger explanation reads as labelled lines in a stable order', () => {
  const lines = explanationLines({
    exact: '1234.5', grams: 1234, credited_grams: 1000, capped_grams: 234, cap_applied: true,
    scenario_code: 'metro_trip', scenario_version: 1, methodology_code: 'SHCI-P-METRO', methodology_version: 2,
    formula: 'distance_km * factor', parameters: { factor: 49 }, occurred_at: '2026-03-31T16:30:00Z', extra: 'x',
  }, 'zh')
  expect(lines.map((l) => [l.label, l.value])).toEqual([
    ['场景', 'metro_trip v1'], ['方法学', 'SHCI-P-METRO v2'], ['计算公式', 'distance_km * factor'], ['参数', 'factor: 49'],
    ['减排量', '1.23 千克'], ['计入减排量', '1 千克'], ['超出上限部分', '234 克'], ['封顶', '是'],
    ['发生时间', '2026-04-01 00:30'], ['extra', 'x'],
  ])
  expect(explanationLines(null)).toEqual([])
})
