"""What only a writing server needs: the sequencer, its admission policy and the stored log's
read view. Imports ``errors``, ``atomic``, ``tlog``, ``protocol``, ``statements``, ``storage``.
"""
