"""The research workflows a scholar runs on top of the assistant: reading a paper (`read`), drafting related work
and outlines (`write`), and proposing grounded research ideas (`ideas`). They build on the assistant and the
knowledge layer; nothing below imports them.
"""
