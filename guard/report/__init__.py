"""Run facts (model) and their renderers: text, Markdown, JSON. Renderers decide nothing."""
