"""Maps that outlive their submitting process: each map's journal (:mod:`.store`)
and finding the maps of this user (:mod:`.catalog`)."""
