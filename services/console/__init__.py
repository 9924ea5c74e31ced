"""kefu console: the agents' and supervisors' web page, served with kefu's own API behind it."""
