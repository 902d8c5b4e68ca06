// Loads pages of the built WeChat mini-program (dist/build/mp-weixin, unchanged) into
// miniprogram-simulate, whose WXML comes from WeChat's own compiler (wcc, via miniprogram-compiler).
// wx.request is answered from recorded.json (validated against openapi.json by pytest); wx storage
// is in memory; navigation calls are recorded for assertions.
const path = require('path')
const simulate = require('miniprogram-simulate')
const recorded = require('./recorded.json')

const ROOT = path.resolve(__dirname, '../../dist/build/mp-weixin')
const FAR_FUTURE = Date.now() + 24 * 3600 * 1000

function byName(name) {
  const entry = recorded.entries.find((e) => e.name === name)
  if (!entry) throw new Error(`no recorded answer named ${name}`)
  return entry
}

/**
 * A fresh fake platform. `script` maps "METHOD /url" to the names of recorded answers given in
 * turn (the last one repeats); every request made is kept in `requests`.
 */
function installPlatform(script) {
  const storage = {
    'carbon.tokens': { access_token: 'citizen-token', refresh_token: 'refresh', access_expires_at: FAR_FUTURE },
  }
  const requests = []
  const navigations = []
  const served = {}
  Object.assign(global.wx, {
    getStorageSync: (k) => (k in storage ? storage[k] : ''),
    setStorageSync: (k, v) => { storage[k] = v },
    removeStorageSync: (k) => { delete storage[k] },
    getSystemInfoSync: () => ({ platform: 'devtools', windowWidth: 390, windowHeight: 844, pixelRatio: 2, language: 'zh_CN', SDKVersion: '3.4.0', screenHeight: 844 }),
    getWindowInfo: () => ({ windowWidth: 390, windowHeight: 844, pixelRatio: 2, screenHeight: 844, statusBarHeight: 20 }),
    setNavigationBarTitle: () => {},
    stopPullDownRefresh: () => {},
    showToast: () => {},
    showModal: (o) => { if (o.success) o.success({ confirm: true, cancel: false }) },
    navigateTo: (o) => navigations.push(o.url),
    redirectTo: (o) => navigations.push(o.url),
    reLaunch: (o) => navigations.push(o.url),
    scanCode: (o) => o.success({ result: 'cq1.scanned-token', scanType: 'QR_CODE' }),
    request(options) {
      const url = options.url.replace(/^https?:\/\/[^/]+/, '').replace(recorded.base, '')
      const key = `${options.method} ${url}`
      requests.push({ key, header: options.header, data: options.data })
      const names = script[key] || script[`${options.method} ${url.split('?')[0]}`]
      setTimeout(() => {
        if (!names) {
          options.fail({ errMsg: `request:fail no recorded answer for ${key}` })
          return
        }
        const turn = served[key] || 0
        served[key] = turn + 1
        const entry = byName(names[Math.min(turn, names.length - 1)])
        options.success({ statusCode: entry.status, data: JSON.parse(JSON.stringify(entry.body)), header: {} })
      }, 0)
    },
  })
  return { storage, requests, navigations }
}

// Each page gets a fresh module registry (jest keeps modules cached, so a page's Component() would
// run only once), hence a fresh uni runtime and app, as after a cold start.
function loadApp() {
  jest.resetModules()
  let app = null
  global.App = (options) => { app = options }
  global.getApp = () => app
  global.getCurrentPages = () => []
  global.Page = () => { throw new Error('uni-app pages are Components') }
  require(path.join(ROOT, 'app.js'))
  if (app && app.onLaunch) app.onLaunch.call(app, {})
}

/** Renders a built page, runs onLoad(query) and onShow like the WeChat runtime, and waits for its requests. */
async function openPage(page, query = {}) {
  loadApp()
  const id = simulate.load(path.join(ROOT, page), { rootPath: ROOT })
  const comp = simulate.render(id)
  comp.attach(document.createElement('parent-wrapper'))
  comp.instance.onLoad(query)
  comp.instance.onShow()
  await settle()
  return comp
}

/** Lets pending requests, promise chains and setData rounds finish. */
async function settle(rounds = 6) {
  for (let i = 0; i < rounds; i += 1) await simulate.sleep(5)
}

function text(comp, selector) {
  const node = comp.querySelector(selector)
  return node ? node.dom.textContent.trim() : null
}

function byTest(comp, name) {
  return comp.dom.querySelector(`[data-test="${name}"]`)
}

module.exports = { ROOT, simulate, installPlatform, openPage, settle, text, byTest }
