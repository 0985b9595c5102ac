Require Import List.
Import ListNotations.

(** Appending the empty list on the right changes nothing. *)
Theorem append_nil : forall l : list nat, l ++ [] = l.
Proof.
  intros l. reflexivity.
Qed.
