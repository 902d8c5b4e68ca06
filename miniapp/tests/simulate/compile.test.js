/**
 * Layer 2a: every WXML and WXSS file of the built WeChat mini-program compiles with WeChat's own
 * Linux compilers (wcc / wcsc, shipped in miniprogram-compiler), as the WeChat toolchain would.
 * @jest-environment jsdom
 */
const fs = require('fs')
const path = require('path')
const { wxmlToJs, wxssToJs } = require('miniprogram-compiler')
const wcsc = require('miniprogram-compiler/src/wcsc')

const ROOT = path.resolve(__dirname, '../../dist/build/mp-weixin')

function files(ext, dir = ROOT) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return files(ext, full)
    return entry.name.endsWith(ext) ? [path.relative(ROOT, full).split(path.sep).join('/')] : []
  })
}

test('the build has every page of pages.json with its four files', () => {
  const app = JSON.parse(fs.readFileSync(path.join(ROOT, 'app.json'), 'utf8'))
  expect(app.pages.length).toBeGreaterThanOrEqual(11)
  for (const page of app.pages) {
    for (const ext of ['.js', '.json', '.wxml', '.wxss']) expect(fs.existsSync(path.join(ROOT, page + ext))).toBe(true)
  }
  const project = JSON.parse(fs.readFileSync(path.join(ROOT, 'project.config.json'), 'utf8'))
  expect(project.appid).toBe(process.env.MP_WEIXIN_APPID || 'touristappid')
})

test('wcc compiles every .wxml file into a render function', () => {
  const wxml = files('.wxml')
  expect(wxml.length).toBeGreaterThanOrEqual(13)
  // eslint-disable-next-line no-new-func
  const $gwx = new Function(wxmlToJs(ROOT, { maxBuffer: 64 * 1024 * 1024 }))()
  for (const file of wxml) expect([file, typeof $gwx(file)]).toEqual([file, 'function'])
})

test('wcsc compiles every .wxss file', () => {
  const wxss = files('.wxss')
  expect(wxss.length).toBeGreaterThanOrEqual(14)
  const result = wcsc(ROOT, wxss.map((f) => f.slice(0, -5)), { maxBuffer: 64 * 1024 * 1024 })
  expect(result).not.toBeInstanceOf(Error)
  // eslint-disable-next-line no-new-func
  const styleOf = new Function(wxssToJs(ROOT, { maxBuffer: 64 * 1024 * 1024 }))()
  for (const file of wxss.filter((f) => f !== 'app.wxss')) expect([file, typeof styleOf(file)]).toEqual([file, 'function'])
})
