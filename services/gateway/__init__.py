"""kefu gateway: the platforms' own protocols (WeChat official accounts, Twilio-compatible SMS)
spoken at kefu's edge, so a real platform connects to kefu as it is."""
