"""What handles members: persistent items (buttons), forms, the checks commands share,
the one way to start a job (`JobStarter`) and the one place errors are answered.

Presentation (what a job's message looks like, and delivering it) is bot/discord; this
package never imports bot.app: what it needs is handed to it once, in setup_hook.
"""
