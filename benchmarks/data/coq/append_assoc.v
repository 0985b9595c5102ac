Require Import List.
Import ListNotations.

(** List concatenation is associative. *)
Theorem append_assoc : forall a b c : list nat, (a ++ b) ++ c = a ++ (b ++ c).
