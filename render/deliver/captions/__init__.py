"""Closed captions for every spoken word: SCC (CEA-608) for broadcast, SRT and WebVTT for the web.

``transcripts`` finds known words, ``speech`` aligns or recognises them in a record's sound (cached),
``layout`` lays them out on the Timeline, ``files`` writes and checks them, ``episode`` ties it together.
"""
