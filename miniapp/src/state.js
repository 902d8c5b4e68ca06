// App-wide UI settings (language, large-text 适老化 mode), kept on the device.
import { reactive } from 'vue'
import { translate } from './lib/i18n'
import { messageFor } from './lib/errors'

const SETTINGS_KEY = 'carbon.settings'

export const ui = reactive({ lang: 'zh', large: false })

export function loadSettings() {
  const saved = uni.getStorageSync(SETTINGS_KEY)
  if (saved && typeof saved === 'object') {
    ui.lang = saved.lang === 'en' ? 'en' : 'zh'
    ui.large = Boolean(saved.large)
  }
}

export function saveSettings() {
  uni.setStorageSync(SETTINGS_KEY, { lang: ui.lang, large: ui.large })
}

export function t(key, params) {
  return translate(ui.lang, key, params)
}

export function errorText(error) {
  return messageFor(error, ui.lang)
}

/** The zh or en member of a {zh, en} object the API sends, or of a pair of *_zh / *_en fields. */
export function local(texts, base) {
  if (!texts) return ''
  if (base) return (ui.lang === 'en' ? texts[`${base}_en`] : texts[`${base}_zh`]) || texts[`${base}_zh`] || ''
  return (ui.lang === 'en' ? texts.en : texts.zh) || texts.zh || ''
}

/** The native navigation bar's title in the current language (pages.json holds the Chinese one). */
export function setTitle(key) {
  uni.setNavigationBarTitle({ title: t(key) })
}
